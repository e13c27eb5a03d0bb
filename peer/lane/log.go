package lane

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// slogFactory routes pion's logs to slog at debug level (pion is chatty at
// warning level about things that are normal for us, like closed sockets).
type slogFactory struct{ log *slog.Logger }

func (f *slogFactory) NewLogger(scope string) logging.LeveledLogger {
	return &slogLogger{log: f.log.With("pion", scope)}
}

// slogLogger formats pion's messages only when debug logging is on: pion
// logs every SACK at debug level, and formatting them for nothing costs a
// few per cent of a receiver's CPU.
type slogLogger struct{ log *slog.Logger }

func (l *slogLogger) on() bool { return l.log.Enabled(context.Background(), slog.LevelDebug) }

func (l *slogLogger) logf(f string, args []any, attrs ...any) {
	if l.on() {
		l.log.Debug(fmt.Sprintf(f, args...), attrs...)
	}
}

func (l *slogLogger) Trace(string)                 {}
func (l *slogLogger) Tracef(string, ...any)        {}
func (l *slogLogger) Debug(msg string)             { l.log.Debug(msg) }
func (l *slogLogger) Debugf(f string, args ...any) { l.logf(f, args) }
func (l *slogLogger) Info(msg string)              { l.log.Debug(msg) }
func (l *slogLogger) Infof(f string, args ...any)  { l.logf(f, args) }
func (l *slogLogger) Warn(msg string)              { l.log.Debug(msg, "pionlevel", "warn") }
func (l *slogLogger) Warnf(f string, args ...any)  { l.logf(f, args, "pionlevel", "warn") }
func (l *slogLogger) Error(msg string)             { l.log.Debug(msg, "pionlevel", "error") }
func (l *slogLogger) Errorf(f string, args ...any) { l.logf(f, args, "pionlevel", "error") }
