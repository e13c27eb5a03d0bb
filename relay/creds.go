package relay

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // TURN REST credentials are HMAC-SHA1 by definition
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Credentials returns the TURN user name and password that let id use a
// relay keyed with secret until expires (TURN REST style: "expiry:id" and
// base64 of its HMAC-SHA1).
func Credentials(secret []byte, id string, expires time.Time) (user, pass string) {
	user = strconv.FormatInt(expires.Unix(), 10) + ":" + id
	return user, password(secret, user)
}

func password(secret []byte, user string) string {
	mac := hmac.New(sha1.New, secret)
	mac.Write([]byte(user))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// errBadUser: a TURN user name not of the form Credentials makes.
var errBadUser = errors.New("malformed user name")

// parseUser splits a user name made by Credentials.
func parseUser(user string) (id string, expires time.Time, err error) {
	exp, id, ok := strings.Cut(user, ":")
	if !ok || id == "" || len(user) > maxUser {
		return "", time.Time{}, errBadUser
	}
	secs, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || secs <= 0 {
		return "", time.Time{}, errBadUser
	}
	return id, time.Unix(secs, 0), nil
}

// maxUser bounds a user name: an expiry and an id of a few dozen bytes.
const maxUser = 128
