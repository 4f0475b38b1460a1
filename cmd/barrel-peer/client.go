package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// client talks to the daemon's HTTP API.
type client struct {
	base  string // API base URL without trailing slash
	token string
	hc    *http.Client
}

func (a *app) client() (*client, error) {
	u, err := url.Parse(a.api)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageErr("--api %q: want a URL like %s", a.api, defaultAPI)
	}
	return &client{base: strings.TrimRight(a.api, "/"), token: a.token, hc: &http.Client{}}, nil
}

// apiError is an error answer of the API.
type apiError struct {
	Status     int           `json:"-"`
	Code       string        `json:"error"`
	Reason     string        `json:"reason"`
	RetryAfter time.Duration `json:"-"` // the server's Retry-After, 0 when absent
}

func (e *apiError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("%s (HTTP %d)", e.Code, e.Status)
	}
	return e.Reason
}

// exitCode maps an API error to the process exit code.
func (e *apiError) exitCode() int {
	if e.Status == http.StatusNotFound {
		return exitNotFound
	}
	return exitFailed
}

// segs joins URL path segments, escaping each.
func segs(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(p))
	}
	return b.String()
}

// send makes a request and returns the response when its status is below
// 400; otherwise it returns the API's error as an *exitError carrying the
// exit code. The caller closes the body.
func (c *client) send(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.sendRequest(req)
}

// sendRequest is send for a request the caller built (its own body and
// headers); the token is added here.
func (c *client) sendRequest(req *http.Request) (*http.Response, error) {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.transportError(req, err)
	}
	if resp.StatusCode < 400 {
		return resp, nil
	}
	defer resp.Body.Close()
	ae := &apiError{Status: resp.StatusCode}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		ae.RetryAfter = time.Duration(secs) * time.Second
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if json.Unmarshal(raw, ae) != nil || ae.Code == "" {
		ae.Code, ae.Reason = http.StatusText(resp.StatusCode), strings.TrimSpace(string(raw))
	}
	return nil, &exitError{code: ae.exitCode(), err: ae}
}

// do sends a request with an optional JSON body and decodes the JSON answer
// into out (when out is not nil).
func (c *client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	switch v := in.(type) {
	case nil:
	case []byte:
		body = bytes.NewReader(v)
	case json.RawMessage:
		body = bytes.NewReader(v)
	default:
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, err := io.Copy(io.Discard, resp.Body)
		return err
	}
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("decode answer of %s %s: %w", method, path, err)
	}
	return nil
}

// retryOverloaded runs call until it does not answer 503 overloaded: the
// server refused the request before doing anything (a rejected request
// changes nothing), so sending it again is safe. It waits the server's
// Retry-After (at most maxOverloadWait, 1 s when absent) between tries and
// gives up after maxOverloadTries, returning the last answer.
// retrying, if not nil, is told of each wait.
func retryOverloaded(ctx context.Context, call func() error, retrying func(err error, wait time.Duration)) error {
	for try := 1; ; try++ {
		err := call()
		var ae *apiError
		if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || try == maxOverloadTries {
			return err
		}
		wait := min(max(ae.RetryAfter, time.Second), maxOverloadWait)
		if retrying != nil {
			retrying(err, wait)
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// How long a client command keeps retrying a server that answers 503.
const (
	maxOverloadTries = 30
	maxOverloadWait  = 5 * time.Second
)

// isNotFound says whether err is an API 404.
func isNotFound(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// printLine writes v as one line of compact JSON.
func printLine(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// parseLiteral reads s as a JSON value when it is one, else as a string.
func parseLiteral(s string) any {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return s
	}
	if _, err := dec.Token(); err != io.EOF {
		return s
	}
	return v
}

// apiCode is the error code of an API error ("not_found", "no_network"),
// or "" when err is not one.
func apiCode(err error) string {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}

// transportError explains a request that got no answer. A refused or
// failed dial means no daemon listens at the API address, which is what
// the user needs to hear, with how to start one; other failures name the
// request once (net/http's own message repeats the URL).
func (c *client) transportError(req *http.Request, err error) error {
	cause := err
	var ue *url.Error
	if errors.As(err, &ue) {
		cause = ue.Err
	}
	if ctxErr := req.Context().Err(); ctxErr != nil {
		return ctxErr
	}
	var oe *net.OpError
	switch {
	case errors.Is(cause, syscall.ECONNREFUSED):
		return fmt.Errorf("no barrel-peer answers at %s (connection refused): start one with 'barrel-peer run', or point --api or BARREL_API at a running one", c.base)
	case errors.As(cause, &oe) && oe.Op == "dial":
		return fmt.Errorf("cannot reach %s (%v): check --api or BARREL_API", c.base, oe.Err)
	}
	return fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), cause)
}
