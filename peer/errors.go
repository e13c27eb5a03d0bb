package peer

import (
	"errors"
	"fmt"

	"github.com/p2pxfer/p2pxfer/chunker"
	"github.com/p2pxfer/p2pxfer/peer/lane"
)

// Sentinel errors. Errors returned by this package wrap one of these, or
// one of pake's (pake.ErrWrongPassword), room's or chunker's sentinels.
// Those that the transport reports too are lane's own.
var (
	// ErrConnect: no working peer-to-peer path (ICE, DTLS or SCTP did not
	// come up in time). Usually a firewall or NAT between the peers.
	ErrConnect = lane.ErrConnect
	// ErrTampered: a sealed signalling message failed authentication, so
	// something between the peers (the signalling server, say) altered it.
	ErrTampered = lane.ErrTampered
	// ErrProtocol: the peer broke the data channel or sealed signalling
	// protocol (a frame out of place, an index out of range, ...).
	ErrProtocol = lane.ErrProtocol
	// ErrVersion: the peer runs another p2pxfer version, whose sealed
	// signalling differs.
	ErrVersion = lane.ErrVersion
	// ErrRemote: the peer reported an error and ended the transfer.
	ErrRemote = lane.ErrRemote
	// ErrPeerLeft: the other side went away before the transfer finished.
	ErrPeerLeft = lane.ErrPeerLeft
	// ErrCorrupt: the peer sent a piece that fails verification; it is
	// dropped for the rest of the transfer.
	ErrCorrupt = errors.New("peer sent corrupt data")
	// ErrTimeout: the peer stopped answering during the handshake.
	ErrTimeout = errors.New("peer did not answer in time")
	// ErrTooManyFailures: Serve closed the room after too many handshakes
	// with a wrong password.
	ErrTooManyFailures = errors.New("too many wrong passwords")
	// ErrForged: a manifest not signed by the room's sender, or a sender
	// key that differs from the one the signalling server handed out.
	ErrForged = errors.New("forged manifest refused")
	// ErrNoSources: every source left and none can be found; the download
	// is kept for a resume.
	ErrNoSources = errors.New("no peer has the missing pieces")
	// ErrSourceChanged: a source said a file changed on its disk since
	// it was offered (it no longer serves it), and nobody else holds what
	// is missing of it. Not corruption: what was verified is kept.
	ErrSourceChanged = errors.New("a file changed at its source since it was offered")
	// ErrSenderLeft: the sender left the room, and nobody still in it
	// holds the pieces missing (wraps ErrNoSources too). The download is
	// kept: a new send of the same files resumes it.
	ErrSenderLeft = errors.New("the sender left the room")
	// ErrAllWithdrawn: Serve withdrew every file, each changed on disk
	// since it was hashed (wraps chunker.ErrSourceChanged): nothing is
	// left to offer.
	ErrAllWithdrawn = fmt.Errorf("%w: every file was withdrawn, nothing is left to offer", chunker.ErrSourceChanged)
)

// ChangedError is ErrSourceChanged with the file: File, as the manifest
// names it (hostile: escape it before printing), changed on the disk of
// the sender (Sender) or of a peer.
type ChangedError struct {
	File   string
	Sender bool
}

func (e *ChangedError) Error() string {
	who := "a peer"
	if e.Sender {
		who = "the sender"
	}
	return fmt.Sprintf("%v: %q changed on the disk of %s", ErrSourceChanged, e.File, who)
}

func (e *ChangedError) Unwrap() error { return ErrSourceChanged }
