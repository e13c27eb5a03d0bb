package cmd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/p2pxfer/p2pxfer/chunker"
	"github.com/p2pxfer/p2pxfer/pake"
	"github.com/p2pxfer/p2pxfer/peer"
	"github.com/p2pxfer/p2pxfer/peer/lane"
	"github.com/p2pxfer/p2pxfer/room"
)

// Exit codes, documented in README.
const (
	ExitOK            = 0
	ExitError         = 1 // anything not listed below
	ExitUsage         = 2 // bad flags or arguments
	ExitWrongPassword = 3
	ExitNoRoom        = 4 // room not found, closed, or closed after wrong passwords
	ExitConnect       = 5 // signalling server unreachable, no peer-to-peer path, peer left
	ExitVerify        = 6 // data, manifest or signalling failed verification
	ExitRefused       = 7 // output exists, no disk space, unsafe names
	ExitInterrupted   = 130
)

// errUnreachable: the signalling server could not be reached.
var errUnreachable = errors.New("cannot reach the signalling server")

// usageError marks errors in how the command was called.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// summary says what went wrong in words for the user. Errors are wrapped
// by every layer they pass, which is what a developer wants (-v shows the
// whole chain) but not what a user should have to read.
func summary(err error) string {
	switch {
	case errors.Is(err, pake.ErrWrongPassword):
		return "wrong password"
	case errors.Is(err, room.ErrTooManyFailures), errors.Is(err, peer.ErrTooManyFailures):
		return "the room was closed after too many wrong passwords"
	case errors.Is(err, room.ErrRoomNotFound):
		return "no such room"
	case errors.Is(err, room.ErrRoomClosed):
		return "the sender closed the room"
	case errors.Is(err, peer.ErrSenderLeft):
		return "the sender left, and nobody still in the room has the pieces missing"
	case errors.Is(err, syscall.ENOSPC):
		return "no space left on the device that holds --out"
	case errors.Is(err, peer.ErrTampered):
		return "a signalling message was altered on the way: the signalling server or the network is tampering"
	case errors.Is(err, pake.ErrBusy):
		return "the sender is serving as many receivers as it allows; try again later"
	case errors.Is(err, peer.ErrForged):
		return "forged manifest refused: the file list is not signed by the room's sender"
	}
	if ch := (*peer.ChangedError)(nil); errors.As(err, &ch) {
		who := "a peer's"
		if ch.Sender {
			who = "the sender's"
		}
		return fmt.Sprintf("%s changed on %s disk after it was offered (this is not corruption)", quoteName(ch.File), who)
	}
	if errors.Is(err, peer.ErrAllWithdrawn) {
		return "every file changed on disk since it was hashed: nothing is left to offer"
	}
	var ce *lane.ConnectError
	if errors.As(err, &ce) {
		return ce.Error()
	}
	// What is in the way in --out, without the layers' operation names.
	if ee := (*chunker.ExistsError)(nil); errors.As(err, &ee) {
		return ee.Error()
	}
	if msg := err.Error(); errors.Is(err, chunker.ErrNoSpace) {
		if i := strings.Index(msg, chunker.ErrNoSpace.Error()); i > 0 {
			return msg[i:]
		}
	}
	if ue := (*unsendableError)(nil); errors.As(err, &ue) {
		return ue.Error()
	}
	// A local path that could not be sent or written into: the path and
	// why, without the layers' operation names (a file that changed while
	// it was hashed, a folder it may not read, --out read-only or in use).
	if pe := (*chunker.PathError)(nil); errors.As(err, &pe) {
		if pe.Op == chunker.OpCreateWriter {
			return "cannot write into " + pe.InWords()
		}
		return pe.InWords()
	}
	return err.Error()
}

// exitCode maps an error to its exit code and a hint for the user.
func exitCode(err error) (int, string) {
	var ue *usageError
	switch {
	case err == nil:
		return ExitOK, ""
	case errors.As(err, &ue):
		return ExitUsage, "run 'p2pxfer help' for usage"
	case errors.Is(err, context.Canceled):
		return ExitInterrupted, ""
	case errors.Is(err, pake.ErrWrongPassword) && errors.Is(err, errFoundOnLAN):
		return ExitWrongPassword, "check the password with the sender; if it is right, another device on this network answered for the room: pass --signal URL as the sender printed"
	case errors.Is(err, pake.ErrWrongPassword):
		return ExitWrongPassword, "check the password with the sender and try again"
	case errors.Is(err, peer.ErrTooManyFailures):
		return ExitNoRoom, "someone may be guessing the password; send again, with a new password"
	case errors.Is(err, room.ErrTooManyFailures):
		return ExitNoRoom, "the room was closed to stop password guessing; the sender must start again"
	case errors.Is(err, errNotOnLAN):
		return ExitNoRoom, "pass --signal URL as the sender printed (without it, recv finds only a sender on this network), or set P2PXFER_SIGNAL"
	case errors.Is(err, room.ErrRoomNotFound):
		return ExitNoRoom, "check the room ID; rooms disappear when the sender stops"
	case errors.Is(err, room.ErrRoomClosed):
		return ExitNoRoom, "the sender has stopped; ask them to send again"
	case errors.Is(err, chunker.ErrExists):
		return ExitRefused, "choose another --out directory, move the file away, or pass --force"
	case errors.Is(err, chunker.ErrNoSpace):
		return ExitRefused, "free some disk space or choose another --out directory"
	case errors.Is(err, errUnsendableName):
		return ExitRefused, "rename the file (or send a copy under another name)"
	case errors.Is(err, syscall.ENOSPC): // the disk filled up during the transfer
		return ExitRefused, "free some disk space and run the same command again: the download resumes from the verified part"
	case errors.Is(err, chunker.ErrInUse):
		return ExitRefused, "another recv is downloading these files into the same --out: let it finish (it keeps what it verified if stopped, for the next run to resume), or choose another --out"
	case errors.Is(err, chunker.ErrReadOnly):
		return ExitRefused, "choose an --out directory on a writable file system"
	case errors.Is(err, chunker.ErrBadName):
		return ExitRefused, "the sender offered a file name that is not safe to write"
	case errors.Is(err, peer.ErrForged):
		return ExitVerify, "someone in the room, or the signalling server, is not the sender; nothing was written"
	case errors.Is(err, pake.ErrVersion), errors.Is(err, room.ErrVersion), errors.Is(err, chunker.ErrManifestVersion),
		errors.Is(err, peer.ErrVersion):
		return ExitError, "both sides need the same p2pxfer version"
	case errors.Is(err, peer.ErrTampered), errors.Is(err, peer.ErrCorrupt), errors.Is(err, chunker.ErrChunkHash),
		errors.Is(err, chunker.ErrBadManifest):
		return ExitVerify, "nothing unverified was kept; try again, and tell the sender if it repeats"
	case errors.As(err, new(*lane.ConnectError)):
		if ce := (*lane.ConnectError)(nil); errors.As(err, &ce) && ce.Relayed() {
			return ExitConnect, "even the relay did not connect: check that UDP or TCP port 3478 of the signalling host is open to both machines"
		}
		return ExitConnect, "no direct path between the two networks (their NATs or firewalls let nothing in): run 'p2pxfer signal --turn' on a host both machines reach, and pass its URL with --signal (see README, Relay)"
	case errors.Is(err, errUnreachable):
		return ExitConnect, "check the --signal address and that the server is running"
	case errors.Is(err, peer.ErrSenderLeft):
		return ExitConnect, "the verified part is kept: " + resumeElsewhere
	case errors.Is(err, chunker.ErrSourceChanged): // send, once every file changed
		return ExitError, "send the files again once nothing writes to them any more"
	case errors.Is(err, peer.ErrSourceChanged):
		return ExitConnect, "what was verified is kept: ask the sender to send the files again (a new room), and recv of it into the same --out resumes what still matches"
	case errors.Is(err, peer.ErrConnect), errors.Is(err, peer.ErrPeerLeft), errors.Is(err, peer.ErrTimeout),
		errors.Is(err, peer.ErrNoSources),
		errors.Is(err, pake.ErrBusy), errors.Is(err, room.ErrPeerGone):
		return ExitConnect, "run the same command again to resume; a firewall between the machines can also cause this"
	}
	return ExitError, ""
}
