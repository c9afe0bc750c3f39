package load

// A worker is one connection's goroutine: it sends, reads the answer, and
// records it when it falls inside the measured window.

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"time"
)

// worker is one connection and its goroutine. Everything except r is owned
// by the goroutine, so the hot path takes no locks and touches no shared
// memory beyond the open-loop slot counter.
type worker struct {
	r       *runner
	addr    string // the server this connection goes to
	conn    net.Conn
	unwatch func() bool // deregisters conn's ctx watcher
	br      *bufio.Reader
	body    bytes.Buffer
	timer   *time.Timer
	next    int  // index of the next request in r.wires
	served  int  // responses read on conn; >0 means it is a reused keep-alive conn
	backoff bool // the last reconnect failed

	lat              []time.Duration
	requests, errors int64
	late, answered   int64
	status           [statusArray]int64
	statusOther      map[int]int64
}

func (w *worker) run() {
	defer w.closeConn()
	r := w.r
	for !r.stopped.Load() {
		from, late, ok := w.pace()
		if !ok {
			return
		}

		i := w.next
		if w.next++; w.next == len(r.wires) {
			w.next = 0
		}
		status, err := w.do(i)
		done := time.Now()
		if err == nil {
			w.answered++
		}
		if from.Before(r.warmEnd) || done.After(r.end) || r.stopped.Load() {
			// Warmup, finished after the window, or aborted: not recorded.
		} else if err != nil {
			w.errors++
			r.sample(err)
		} else {
			w.requests++
			w.lat = append(w.lat, done.Sub(from))
			if late {
				w.late++
			}
			if uint(status) < statusArray {
				w.status[status]++
			} else {
				if w.statusOther == nil {
					w.statusOther = map[int]int64{}
				}
				w.statusOther[status]++
			}
			if r.check != nil {
				if cerr := r.check(i, status, w.body.Bytes()); cerr != nil {
					w.errors++
					r.sample(fmt.Errorf("check request %d: %w", i, cerr))
				}
			}
		}
		if w.backoff {
			w.backoff = false
			if !w.sleep(redialBackoff) {
				return
			}
		}
	}
}
