package redis

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/go-lb/lb"
)

// DefaultPrefix is the prefix of every key and channel when
// Resolver.Prefix and RegisterOptions.Prefix are empty.
const DefaultPrefix = "lb:"

// MaxNameLen is the longest prefix, service name or instance ID accepted,
// in bytes.
const MaxNameLen = 512

// layout names the keys and channels of one service (see the package
// documentation): every name starts with prefix + "{" + service + "}:",
// so that a service's keys share one hash slot.
type layout struct {
	base string // prefix + "{" + service + "}:"
}

func newLayout(prefix, service string) layout {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return layout{base: prefix + "{" + service + "}:"}
}

// instanceKey is the key holding the endpoint of instance id.
func (l layout) instanceKey(id string) string { return l.base + "ep:" + id }

// index is the sorted set listing the service's instance IDs, scored by
// when each is due to expire (Unix milliseconds, server time).
func (l layout) index() string { return l.base + "index" }

// channel is where changes are announced: a message is an instance ID
// (fetch that instance again) or empty (read the whole service again).
func (l layout) channel() string { return l.base + "changes" }

// keyspacePrefix is the channel name of the keyspace notifications of
// database db for instance keys, without the ID.
func (l layout) keyspacePrefix(db int) string {
	return "__keyspace@" + strconv.Itoa(db) + "__:" + l.base + "ep:"
}

// keyspacePattern is the PSUBSCRIBE pattern matching keyspacePrefix(db)
// followed by anything.
func (l layout) keyspacePattern(db int) string {
	return globEscape(l.keyspacePrefix(db)) + "*"
}

// globEscape escapes the characters that Redis's glob-style patterns
// treat specially, so that s matches only itself.
func globEscape(s string) string {
	if !strings.ContainsAny(s, `*?[]\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// eventKind is what a notification asks of the resolver.
type eventKind int

const (
	eventIgnore  eventKind = iota // nothing to do
	eventFetch                    // fetch one instance again
	eventReadAll                  // read the whole service again
)

// parseKeyspace reads a keyspace notification: channel is
// keyspacePrefix + ID, payload the event's name. Events that only change
// a key's TTL ("expire", "persist") need nothing; any other event on a
// valid instance key (set, del, expired, evicted, rename_from,
// rename_to, ...) asks to fetch that instance.
func parseKeyspace(prefix, channel, payload string) (string, eventKind) {
	id, ok := strings.CutPrefix(channel, prefix)
	if !ok || validName(id) != nil {
		return "", eventIgnore
	}
	switch payload {
	case "expire", "persist":
		return "", eventIgnore
	}
	return id, eventFetch
}

// parseAnnouncement reads a message of the service's channel: an
// instance ID asks to fetch that instance; an empty payload, or one that
// is no valid ID, asks to read everything again.
func parseAnnouncement(payload string) (string, eventKind) {
	if payload == "" || validName(payload) != nil {
		return "", eventReadAll
	}
	return payload, eventFetch
}

// validName checks a service name or an instance ID: 1 to MaxNameLen
// bytes of UTF-8, with no whitespace or control characters.
func validName(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("is empty")
	case len(s) > MaxNameLen:
		return fmt.Errorf("is %d bytes long; at most %d", len(s), MaxNameLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("%q is not valid UTF-8", s)
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Errorf("%q contains whitespace or a control character", s)
		}
	}
	return nil
}

// checkNames validates a service name and a prefix; the errors name the
// fields given.
func checkNames(serviceField, service, prefixField, prefix string) error {
	if err := validName(service); err != nil {
		return fmt.Errorf("%w: %s %v", lb.ErrInvalidConfig, serviceField, err)
	}
	if prefix != "" {
		if err := validName(prefix); err != nil {
			return fmt.Errorf("%w: %s %v", lb.ErrInvalidConfig, prefixField, err)
		}
	}
	return nil
}
