package pake

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"

	"github.com/gtank/ristretto255"
)

// Params are bound into the CPace channel identifier CI, so a handshake
// cannot be replayed into another room or between other peers. Both sides
// must pass the same values; any difference fails like a wrong password.
type Params struct {
	Room      string // room ID
	Initiator string // initiator (receiver) peer ID
	Responder string // responder (sender) peer ID
}

// channelID is CI = lv_cat("p2pxfer", version, Room, Initiator, Responder).
// Length prefixes keep ("ab","c") and ("a","bc") apart.
func (p Params) channelID() []byte {
	return lvCat([]byte("p2pxfer"), []byte{Version}, []byte(p.Room),
		[]byte(p.Initiator), []byte(p.Responder))
}

// Associated data each side sends with its share. Fixed per role: they only
// make the two shares' roles explicit in the transcript.
var (
	adInitiator = []byte("p2pxfer initiator")
	adResponder = []byte("p2pxfer responder")
)

// HKDF info labels: one key per purpose and direction, so a MAC can never
// be reflected back and the two directions never share a nonce space.
const (
	infoConfirmInitiator = "p2pxfer v1 confirm initiator"
	infoConfirmResponder = "p2pxfer v1 confirm responder"
	infoSealIR           = "p2pxfer v1 seal initiator->responder"
	infoSealRI           = "p2pxfer v1 seal responder->initiator"
	keyLen               = 32
)

var errEmptyPassword = errors.New("empty password")

// keys is the key schedule derived from ISK.
type keys struct {
	confI, confR, sealIR, sealRI []byte
}

func (k *keys) wipe() {
	clear(k.confI)
	clear(k.confR)
	clear(k.sealIR)
	clear(k.sealRI)
}

// deriveKeys expands ISK with HKDF-SHA512 into the four 32-byte keys.
func deriveKeys(isk []byte) (keys, error) {
	var k keys
	prk, err := hkdf.Extract(sha512.New, isk, nil)
	if err != nil {
		return k, err
	}
	defer clear(prk)
	for _, d := range []struct {
		dst  *[]byte
		info string
	}{
		{&k.confI, infoConfirmInitiator},
		{&k.confR, infoConfirmResponder},
		{&k.sealIR, infoSealIR},
		{&k.sealRI, infoSealRI},
	} {
		if *d.dst, err = hkdf.Expand(sha512.New, prk, d.info, keyLen); err != nil {
			k.wipe()
			return keys{}, err
		}
	}
	return k, nil
}

// mac is the key-confirmation MAC over the transcript. The two sides use
// different keys, so MAC_a and MAC_b differ although the input is the same.
func mac(key, transcript []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(transcript)
	return h.Sum(make([]byte, 0, macLen))
}

// sharedKeys runs the common tail of both sides: K from our scalar and the
// peer's share, then the transcript, ISK and key schedule.
func sharedKeys(y *ristretto255.Scalar, peerShare, sid, ya, yb []byte) (transcript []byte, k keys, err error) {
	kk, err := scalarMultVfy(y, peerShare)
	if err != nil {
		return nil, keys{}, err
	}
	transcript = transcriptIR(ya, adInitiator, yb, adResponder)
	isk := deriveISK(sid, kk, transcript)
	clear(kk)
	k, err = deriveKeys(isk)
	clear(isk)
	if err != nil {
		return nil, keys{}, err
	}
	return transcript, k, nil
}

// Initiator is the receiver's half-finished handshake, between sending
// Hello and receiving Reply. It is single-use and not safe for concurrent
// use.
type Initiator struct {
	y    *ristretto255.Scalar
	sid  []byte
	ya   []byte
	done bool
}

// NewInitiator starts a handshake and returns the Hello frame to send to
// the responder. The password must not be empty.
func NewInitiator(password string, p Params) (*Initiator, []byte, error) {
	i, hello, err := newInitiator(rand.Reader, password, p)
	if err != nil {
		return nil, nil, fmt.Errorf("pake new initiator: %w", err)
	}
	return i, hello, nil
}

// newInitiator is NewInitiator with a chosen randomness source, so tests
// and fuzzers can replay a handshake deterministically.
func newInitiator(r io.Reader, password string, p Params) (*Initiator, []byte, error) {
	if password == "" {
		return nil, nil, errEmptyPassword
	}
	sid := make([]byte, sidLen)
	if _, err := io.ReadFull(r, sid); err != nil {
		return nil, nil, fmt.Errorf("reading randomness: %w", err)
	}
	y, err := sampleScalar(r)
	if err != nil {
		return nil, nil, err
	}
	prs := []byte(password)
	g := calculateGenerator(prs, p.channelID(), sid)
	clear(prs)
	ya := scalarMult(y, g)
	return &Initiator{y: y, sid: sid, ya: ya}, helloFrame(sid, ya), nil
}

// Finish processes the responder's Reply. If the responder's MAC verifies,
// it returns the Session and the Confirm frame to send; it fails with
// ErrWrongPassword if not (the caller should then send
// AbortFrame(AbortWrongPassword)), and with the peer's abort error if reply
// is an Abort frame. Finish may be called only once: after any error the
// handshake is over, so one handshake is one password guess.
func (i *Initiator) Finish(reply []byte) (*Session, []byte, error) {
	s, confirm, err := i.finish(reply)
	if err != nil {
		return nil, nil, fmt.Errorf("pake initiator finish: %w", err)
	}
	return s, confirm, nil
}

func (i *Initiator) finish(reply []byte) (*Session, []byte, error) {
	if i.done {
		return nil, nil, ErrFinished
	}
	i.done = true
	defer i.y.Zero()

	if err := abortIfAbort(reply); err != nil {
		return nil, nil, err
	}
	yb, macB, err := parseReply(reply)
	if err != nil {
		return nil, nil, err
	}
	transcript, k, err := sharedKeys(i.y, yb, i.sid, i.ya, yb)
	if err != nil {
		return nil, nil, err
	}
	defer k.wipe()
	if !hmac.Equal(macB, mac(k.confR, transcript)) {
		return nil, nil, ErrWrongPassword
	}
	s, err := newSession(true, k.sealIR, k.sealRI)
	if err != nil {
		return nil, nil, err
	}
	return s, confirmFrame(mac(k.confI, transcript)), nil
}

// Responder is the sender's half-finished handshake, between sending Reply
// and receiving Confirm. It is single-use and not safe for concurrent use.
type Responder struct {
	transcript     []byte
	confI          []byte
	sealIR, sealRI []byte
	done           bool
}

// Respond answers the initiator's Hello and returns the Reply frame to
// send. It fails with ErrVersion if the Hello is of another version (the
// caller should send AbortFrame(AbortVersion)), ErrBadFrame or ErrBadPoint
// if it is malformed, and with the peer's abort error if hello is an Abort
// frame. The password must not be empty.
func Respond(password string, p Params, hello []byte) (*Responder, []byte, error) {
	r, reply, err := respond(rand.Reader, password, p, hello)
	if err != nil {
		return nil, nil, fmt.Errorf("pake respond: %w", err)
	}
	return r, reply, nil
}

// respond is Respond with a chosen randomness source (see newInitiator).
func respond(rnd io.Reader, password string, p Params, hello []byte) (*Responder, []byte, error) {
	if password == "" {
		return nil, nil, errEmptyPassword
	}
	if err := abortIfAbort(hello); err != nil {
		return nil, nil, err
	}
	sid, ya, err := parseHello(hello)
	if err != nil {
		return nil, nil, err
	}
	y, err := sampleScalar(rnd)
	if err != nil {
		return nil, nil, err
	}
	defer y.Zero()
	prs := []byte(password)
	g := calculateGenerator(prs, p.channelID(), sid)
	clear(prs)
	yb := scalarMult(y, g)
	transcript, k, err := sharedKeys(y, ya, sid, ya, yb)
	if err != nil {
		return nil, nil, err
	}
	macB := mac(k.confR, transcript)
	clear(k.confR)
	r := &Responder{transcript: transcript, confI: k.confI, sealIR: k.sealIR, sealRI: k.sealRI}
	return r, replyFrame(yb, macB), nil
}

// Finish processes the initiator's Confirm and returns the Session. It
// fails with ErrWrongPassword if the initiator's MAC does not verify, and
// with the peer's abort error if confirm is an Abort frame (which is how a
// wrong password is normally reported: the initiator notices first). Finish
// may be called only once.
func (r *Responder) Finish(confirm []byte) (*Session, error) {
	s, err := r.finish(confirm)
	if err != nil {
		return nil, fmt.Errorf("pake responder finish: %w", err)
	}
	return s, nil
}

func (r *Responder) finish(confirm []byte) (*Session, error) {
	if r.done {
		return nil, ErrFinished
	}
	r.done = true
	defer func() {
		clear(r.confI)
		clear(r.sealIR)
		clear(r.sealRI)
	}()

	if err := abortIfAbort(confirm); err != nil {
		return nil, err
	}
	macA, err := parseConfirm(confirm)
	if err != nil {
		return nil, err
	}
	if !hmac.Equal(macA, mac(r.confI, r.transcript)) {
		return nil, ErrWrongPassword
	}
	return newSession(false, r.sealRI, r.sealIR)
}
