package pionlog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

type countingStringer struct{ n *int }

func (c countingStringer) String() string { *c.n++; return "sack" }

// TestPionLogLazy: pion's debug messages are formatted only when debug
// logging is on (pion logs every SACK at debug level).
func TestPionLogLazy(t *testing.T) {
	var buf bytes.Buffer
	for _, c := range []struct {
		level   slog.Level
		formats int
	}{{slog.LevelWarn, 0}, {slog.LevelDebug, 4}} {
		buf.Reset()
		n := 0
		f := &Factory{Log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: c.level}))}
		l := f.NewLogger("sctp")
		s := countingStringer{&n}
		l.Debugf("sending %v", s)
		l.Infof("sending %v", s)
		l.Warnf("sending %v", s)
		l.Errorf("sending %v", s)
		l.Tracef("sending %v", s)
		if n != c.formats {
			t.Errorf("level %v: formatted %d times, want %d", c.level, n, c.formats)
		}
		if got := strings.Count(buf.String(), "sending sack"); got != c.formats {
			t.Errorf("level %v: %d messages logged, want %d:\n%s", c.level, got, c.formats, buf.String())
		}
	}
}
