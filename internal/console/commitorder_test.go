package console

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/claiim/claiim-operator/gate/chron"
)

// TestPagesAndTailsUnderDelayedCommits: three streams append at once; one
// of them holds each transaction open a while before committing it, so
// its rows commit after rows that began later. Meanwhile, through the
// API, one reader tails from before the first row, and another pages
// newest first and tails from that listing's tail. Each ends with exactly
// the table: no row lost, none twice.
func TestPagesAndTailsUnderDelayedCommits(t *testing.T) {
	e := newEnv(t)
	e.api.MaxStreams = 4
	fromStart := e.openTail(t, "admin", "")
	if ev := <-fromStart.events; ev.id == "" {
		t.Fatal("the tail did not start")
	}

	stop := make(chan struct{})
	var writers sync.WaitGroup
	for _, s := range []string{"gate/a", "gate/b"} {
		w := e.writer(t, s)
		for range 3 {
			writers.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := w.Write(e.ctx, record(i, "engineering")); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	writers.Go(func() {
		// manager/slow: rows written as a writer would (time before the
		// commit) in transactions held open 20-170 ms. Its chain is not
		// real: this is about order, not hashes.
		seq := 0
		for range 10 {
			tx, err := e.owner.Begin(e.ctx)
			if err != nil {
				t.Error(err)
				return
			}
			for range 1 + rand.IntN(3) {
				seq++
				if _, err := tx.Exec(e.ctx, `INSERT INTO chron_records (id, stream, seq, time, kind, outcome, prev_hash, hash)
					VALUES ($1, 'manager/slow', $2, $3, 'pim.approved', 'ALLOW', 'x', 'x')`, chron.NewID(), seq, time.Now()); err != nil {
					t.Error(err)
					return
				}
			}
			time.Sleep(time.Duration(20+rand.IntN(150)) * time.Millisecond)
			if err := tx.Commit(e.ctx); err != nil {
				t.Error(err)
				return
			}
		}
	})

	// Pages, newest first, from a moment into the writing; then its tail.
	time.Sleep(200 * time.Millisecond)
	paged, tail := e.list(t, "admin", "/api/v1/chron/entries?limit=40")
	afterPages := e.openTail(t, "admin", "cursor="+tail)
	time.Sleep(800 * time.Millisecond)
	close(stop)
	writers.Wait()

	rows, err := e.owner.Query(e.ctx, "SELECT id FROM chron_records")
	if err != nil {
		t.Fatal(err)
	}
	all, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	tailed, _ := afterPages.entries(t, len(all)-len(paged))
	started, _ := fromStart.entries(t, len(all))
	time.Sleep(100 * time.Millisecond) // a few polls more: nothing else may come
	for name, got := range map[string][]string{"pages then tail": append(paged, tailed...), "tail from the start": started} {
		for _, ts := range []*tailStream{afterPages, fromStart} {
		drain:
			for {
				select {
				case ev := <-ts.events:
					if ev.name == "entry" {
						t.Errorf("%s: an entry after all %d rows: %s", name, len(all), ev.data)
					}
				default:
					break drain
				}
			}
		}
		seen := map[string]int{}
		for _, id := range got {
			seen[id]++
		}
		missing, twice := 0, 0
		for _, id := range all {
			switch seen[id] {
			case 0:
				missing++
			case 1:
			default:
				twice++
			}
		}
		if missing > 0 || twice > 0 || len(got) != len(all) {
			t.Errorf("%s: %d entries for %d rows: %d missing, %d twice", name, len(got), len(all), missing, twice)
		}
	}
	t.Logf("%d rows: %d paged, %d tailed after the pages", len(all), len(paged), len(tailed))
}
