package couch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Bounds of barrel's requests to a remote CouchDB-protocol server.
const (
	// MaxRemoteAnswerBytes bounds one answer of the remote (a _changes
	// page, a _bulk_get batch): a longer one fails the sync, which a
	// smaller batch size avoids.
	MaxRemoteAnswerBytes = 64 << 20
	// DefaultRequestTimeout bounds one request to the remote, its answer
	// read included, when SyncOptions.RequestTimeout is 0.
	DefaultRequestTimeout = 60 * time.Second
)

// Auth is how barrel authenticates to a remote server: a bearer token,
// or HTTP Basic with User and Password. All empty: no credentials (or
// those in the URL's user info).
type Auth struct {
	User, Password string
	Token          string
}

// RemoteError is a failed request to the remote server: an error answer
// (Status, and the remote's CouchDB error and reason when it sent them),
// no answer (Status 0), or an answer barrel cannot use. URL carries no
// credentials.
type RemoteError struct {
	Method, URL string
	Status      int
	Code        string // the remote's "error"
	Reason      string // the remote's "reason", or what went wrong
}

func (e *RemoteError) Error() string {
	switch {
	case e.Status == 0:
		return fmt.Sprintf("%s %s: %s", e.Method, e.URL, e.Reason)
	case e.Code == "":
		return fmt.Sprintf("%s %s: HTTP %d: %s", e.Method, e.URL, e.Status, e.Reason)
	default:
		return fmt.Sprintf("%s %s: HTTP %d %s: %s", e.Method, e.URL, e.Status, e.Code, e.Reason)
	}
}

// isStatus says whether err is a RemoteError answer with one of codes.
func isStatus(err error, codes ...int) bool {
	re, ok := errors.AsType[*RemoteError](err)
	if !ok {
		return false
	}
	for _, c := range codes {
		if re.Status == c {
			return true
		}
	}
	return false
}

// remote is one database of a CouchDB-protocol server.
type remote struct {
	db      string // the database's URL, without credentials or trailing slash
	auth    Auth
	hc      *http.Client
	timeout time.Duration
}

// newRemote parses the database URL raw: http or https, credentials in
// its user info taken as Basic auth when a has none.
func newRemote(raw string, a Auth, timeout time.Duration) (*remote, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, BadRequest(fmt.Sprintf("remote %s: want a database URL like http://127.0.0.1:5984/db", quote(redact(raw))))
	}
	if u.User != nil {
		if a == (Auth{}) {
			a.User = u.User.Username()
			a.Password, _ = u.User.Password()
		}
		u.User = nil
	}
	u.RawQuery, u.Fragment = "", ""
	if strings.Trim(u.Path, "/") == "" {
		return nil, BadRequest(fmt.Sprintf("remote %s names no database", quote(u.String())))
	}
	if timeout <= 0 {
		timeout = DefaultRequestTimeout
	}
	return &remote{db: strings.TrimRight(u.String(), "/"), auth: a, hc: &http.Client{}, timeout: timeout}, nil
}

// redact drops the user info of a URL that parses, for messages.
func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return raw
}

// do sends method path?query (path relative to the database, "" for the
// database itself) with in as its JSON body (nil: none) and decodes the
// JSON answer into out (nil: discarded). An answer of 400 or more is a
// *RemoteError with the remote's error and reason.
func (c *remote) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	u := c.db
	if path != "" {
		u += "/" + path
	}
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	shown := c.db
	if path != "" {
		shown += "/" + path
	}
	fail := func(status int, code, reason string) error {
		return &RemoteError{Method: method, URL: shown, Status: status, Code: code, Reason: reason}
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fail(0, "", err.Error())
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	switch {
	case c.auth.Token != "":
		req.Header.Set("Authorization", "Bearer "+c.auth.Token)
	case c.auth.User != "" || c.auth.Password != "":
		req.SetBasicAuth(c.auth.User, c.auth.Password)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return fail(0, "", fmt.Sprintf("no answer in %v", c.timeout))
		}
		return fail(0, "", err.Error())
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxRemoteAnswerBytes+1))
	if err != nil {
		return fail(resp.StatusCode, "", "read the answer: "+err.Error())
	}
	if len(raw) > MaxRemoteAnswerBytes {
		return fail(resp.StatusCode, "", fmt.Sprintf("answer over %d bytes: use a smaller batch size", MaxRemoteAnswerBytes))
	}
	if resp.StatusCode >= 400 {
		var e struct {
			Error  string `json:"error"`
			Reason string `json:"reason"`
		}
		if json.Unmarshal(raw, &e) != nil || e.Error == "" {
			e.Reason = http.StatusText(resp.StatusCode)
		}
		return fail(resp.StatusCode, e.Error, e.Reason)
	}
	if out == nil {
		return nil
	}
	if !utf8.Valid(raw) {
		return fail(resp.StatusCode, "", "the answer is not valid UTF-8")
	}
	if err := decodeJSON(raw, out); err != nil {
		return fail(resp.StatusCode, "", "the answer is not the JSON expected: "+err.Error())
	}
	return nil
}

// seqString is a sequence as the remote sent it (a JSON string, or a
// number as CouchDB 1.x and PouchDB send), as the string to send back.
func seqString(raw json.RawMessage) string {
	if len(raw) == 0 || isNull(raw) {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return strings.TrimSpace(string(raw))
}
