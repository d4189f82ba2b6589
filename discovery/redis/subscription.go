package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// notifications makes sure the server sends the keyspace events Watch
// uses, or logs once that it does not. Only a failure to reach the server
// is an error.
func (st *watchState) notifications(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, st.RequestTimeout)
	defer cancel()
	cur, err := st.cmds.ConfigGet(rctx, "notify-keyspace-events").Result()
	if err != nil && !isServerError(err) {
		return err
	}
	var missing string
	if err == nil {
		missing = missingEventClasses(cur["notify-keyspace-events"])
		if missing == "" {
			return nil
		}
		if !st.LeaveConfig {
			flags := cur["notify-keyspace-events"] + missing
			err = st.cmds.ConfigSet(rctx, "notify-keyspace-events", flags).Err()
			if err == nil {
				st.Logger.Info("redis: enabled keyspace notifications", "notify-keyspace-events", flags)
				return nil
			}
			if !isServerError(err) {
				return err
			}
		}
	}
	if !st.warned {
		st.warned = true
		st.Logger.Warn("redis: keyspace notifications are off; expired instances and keys written by hand are seen only at each re-read",
			"service", st.Service, "missing_classes", missing, "leave_config", st.LeaveConfig, "err", err, "resync_interval", st.ResyncInterval)
	}
	return nil
}

// neededClasses are the notify-keyspace-events classes Watch uses: K
// (keyspace channels), g (del, rename, ...), $ (set), x (expired) and e
// (evicted). A includes the last four.
const neededClasses = "Kg$xe"

// missingEventClasses returns the classes of neededClasses that flags
// lacks.
func missingEventClasses(flags string) string {
	var missing []byte
	for i := 0; i < len(neededClasses); i++ {
		c := neededClasses[i]
		if containsByte(flags, c) || (c != 'K' && containsByte(flags, 'A')) {
			continue
		}
		missing = append(missing, c)
	}
	return string(missing)
}

func containsByte(s string, c byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return true
		}
	}
	return false
}

// isServerError reports whether err is an error reply of the server
// (such as "ERR unknown command" or a NOPERM), not a failure to reach it.
func isServerError(err error) bool {
	var re goredis.Error
	return errors.As(err, &re) && !errors.Is(err, goredis.ErrClosed)
}

// subscribe subscribes ps to the service's keyspace notifications and
// channel, and waits for each confirmation: from then on no change is
// missed, so reading everything afterwards leaves no gap. A subscription
// the server refuses (an ACL user without access to the channel) is
// logged once and left out: the re-reads stand in for it.
func (st *watchState) subscribe(ctx context.Context, ps *goredis.PubSub) error {
	sctx, cancel := context.WithTimeout(ctx, st.RequestTimeout)
	defer cancel()
	subs := []struct {
		kind      string
		name      string
		sub       func(context.Context, ...string) error
		unsub     func(context.Context, ...string) error
		refusedOf *bool
	}{
		{"psubscribe", st.keyspacePattern(st.db), ps.PSubscribe, ps.PUnsubscribe, &st.refused[0]},
		{"subscribe", st.channel(), ps.Subscribe, ps.Unsubscribe, &st.refused[1]},
	}
	for _, s := range subs {
		if err := s.sub(sctx, s.name); err != nil {
			return err
		}
		err := awaitConfirmation(sctx, ps, s.kind, s.name, st.RequestTimeout)
		if err != nil && isServerError(err) {
			if !*s.refusedOf {
				*s.refusedOf = true
				st.Logger.Warn("redis: the server refused a subscription; relying on re-reads for what it would announce",
					"service", st.Service, "channel", s.name, "err", err, "resync_interval", st.ResyncInterval)
			}
			// Forget it, so that it is not subscribed again; the
			// server's confirmation is read and dropped by receive.
			err = s.unsub(sctx, s.name)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// awaitConfirmation reads ps until the subscription of kind to name is
// confirmed, or an error.
func awaitConfirmation(ctx context.Context, ps *goredis.PubSub, kind, name string, timeout time.Duration) error {
	for {
		m, err := ps.ReceiveTimeout(ctx, timeout)
		if err != nil {
			return err
		}
		if s, ok := m.(*goredis.Subscription); ok && s.Kind == kind && s.Channel == name {
			return nil
		}
		// A notification, or the confirmation of an unsubscription: the
		// read that follows the subscriptions sees every change.
	}
}

// receive hands every message of ps to msgs, and the error that ends the
// subscription last, until quit is closed. It pings the server after
// RequestTimeout without a message, and gives up after another.
func (st *watchState) receive(ps *goredis.PubSub, msgs chan<- any, quit <-chan struct{}) {
	pinged := false
	for {
		m, err := ps.ReceiveTimeout(context.Background(), st.RequestTimeout)
		if err != nil {
			if isTimeout(err) && !pinged {
				pctx, cancel := context.WithTimeout(context.Background(), st.RequestTimeout)
				err = ps.Ping(pctx)
				cancel()
				if err == nil {
					pinged = true
					continue
				}
			}
			if isTimeout(err) {
				err = fmt.Errorf("the subscription did not answer a ping in %v: %w", st.RequestTimeout, err)
			}
			select {
			case msgs <- err:
			case <-quit:
			}
			return
		}
		pinged = false
		if _, ok := m.(*goredis.Message); !ok {
			continue // pongs, subscription confirmations
		}
		select {
		case msgs <- m:
		case <-quit:
			return
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
