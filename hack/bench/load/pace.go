package load

// When each request goes out: at once (closed loop) or at its slot of the
// offered rate (open loop).

import (
	"time"
)

// pace waits for this connection's next send and says when the request's
// latency is measured from and whether it went out late; ok is false once
// the window is over or ctx has ended.
//
// Closed loop: send now. Open loop: take the next slot of the fixed rate
// and wait for its time; a request whose slot has passed because this
// connection was busy is timed from the slot (coordinated omission).
func (w *worker) pace() (from time.Time, late, ok bool) {
	r := w.r
	if r.rate <= 0 {
		from = time.Now()
		return from, false, from.Before(r.end)
	}
	k := r.slot.Add(1) - 1
	intended := r.start.Add(time.Duration(float64(k) * r.nsPerReq))
	if !intended.Before(r.end) {
		return time.Time{}, false, false
	}
	now := time.Now()
	switch d := intended.Sub(now); {
	case d > minSleep:
		if !w.sleep(d) {
			return time.Time{}, false, false
		}
		// The connection was idle: a timer that wakes late is the
		// generator's delay, not the server's, so latency starts at
		// the actual send (Late still counts it). Coordinated
		// omission is about a busy connection: the default case.
		from = time.Now()
		late = from.Sub(intended) > lateAfter
	case d > 0:
		// Too close to be worth a timer: send a hair early and
		// measure from the actual send so latency stays honest.
		from = now
	default:
		from, late = intended, -d > lateAfter
	}
	return from, late, true
}

// sleep waits d with a reused timer; false if ctx ended first.
func (w *worker) sleep(d time.Duration) bool {
	if w.timer == nil {
		w.timer = time.NewTimer(d)
	} else {
		// Since Go 1.23 Reset discards any stale tick, so no drain is needed.
		w.timer.Reset(d)
	}
	select {
	case <-w.timer.C:
		return true
	case <-w.r.ctx.Done():
		return false
	}
}
