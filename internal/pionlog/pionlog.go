// Package pionlog routes pion's logs to log/slog, all at debug level: pion
// is chatty at warning level about things that are normal for p2pxfer,
// like closed sockets, and logs every SCTP packet at debug level.
package pionlog

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// Factory is a pion logging.LoggerFactory over an slog.Logger.
type Factory struct{ Log *slog.Logger }

// NewLogger returns the logger of one pion scope ("sctp", "ice", ...).
func (f *Factory) NewLogger(scope string) logging.LeveledLogger {
	return &logger{log: f.Log.With("pion", scope)}
}

// logger formats pion's messages only when debug logging is on: pion logs
// every SACK at debug level, and formatting them for nothing costs a few
// per cent of a receiver's CPU.
type logger struct{ log *slog.Logger }

func (l *logger) on() bool { return l.log.Enabled(context.Background(), slog.LevelDebug) }

func (l *logger) logf(f string, args []any, attrs ...any) {
	if l.on() {
		l.log.Debug(fmt.Sprintf(f, args...), attrs...)
	}
}

func (l *logger) Trace(string)                 {}
func (l *logger) Tracef(string, ...any)        {}
func (l *logger) Debug(msg string)             { l.log.Debug(msg) }
func (l *logger) Debugf(f string, args ...any) { l.logf(f, args) }
func (l *logger) Info(msg string)              { l.log.Debug(msg) }
func (l *logger) Infof(f string, args ...any)  { l.logf(f, args) }
func (l *logger) Warn(msg string)              { l.log.Debug(msg, "pionlevel", "warn") }
func (l *logger) Warnf(f string, args ...any)  { l.logf(f, args, "pionlevel", "warn") }
func (l *logger) Error(msg string)             { l.log.Debug(msg, "pionlevel", "error") }
func (l *logger) Errorf(f string, args ...any) { l.logf(f, args, "pionlevel", "error") }
