package client

import (
	cryptorand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"time"
)

// maxTries bounds the tries of one call whose connection is refused: a
// gate pod going away during a rollout refuses until its endpoint leaves
// the Service, and another try likely reaches another replica.
const maxTries = 3

// neverSent reports whether err means the request never left: the TCP
// connection was not made (refused, no route, no such host). A dial that
// timed out is not retried either: the caller's time is spent.
func neverSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" && !op.Timeout()
}

// backoff is the pause before try+1: 100 ms, then 200 ms, with up to half
// again of jitter so clients refused together do not return together.
func backoff(try int) time.Duration {
	d := 100 * time.Millisecond << (try - 1)
	return d + rand.N(d/2)
}

// NewKey returns a fresh Idempotency-Key: a version 7 UUID (random, and
// time-ordered, which keeps the gate's keyed decision IDs time-ordered in
// Chron's index).
func NewKey() string {
	var u [16]byte
	ms := time.Now().UnixMilli()
	for i := range 6 {
		u[i] = byte(ms >> (40 - 8*i))
	}
	_, _ = cryptorand.Read(u[6:]) // never fails (crypto/rand since Go 1.24)
	u[6] = u[6]&0x0f | 0x70       // version 7
	u[8] = u[8]&0x3f | 0x80       // RFC 9562 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:])
}
