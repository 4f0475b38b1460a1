package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// sseEvent is one server-sent event.
type sseEvent struct {
	event, id string
	data      map[string]any
}

// sseStream reads the events of a live query answer.
type sseStream struct {
	t      *testing.T
	resp   *http.Response
	r      *bufio.Reader
	cancel context.CancelFunc
}

func openLive(t *testing.T, url, token, body string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("live query: %v", err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		cancel()
		t.Fatalf("live query: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return &sseStream{t: t, resp: resp, r: bufio.NewReader(resp.Body), cancel: cancel}
}

func (s *sseStream) close() { s.cancel(); s.resp.Body.Close() }

// next reads one event, skipping comment lines (heartbeats).
func (s *sseStream) next() sseEvent {
	s.t.Helper()
	var e sseEvent
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			s.t.Fatalf("read event stream: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "" && e.event != "":
			return e
		case strings.HasPrefix(line, "event: "):
			e.event = line[len("event: "):]
		case strings.HasPrefix(line, "id: "):
			e.id = line[len("id: "):]
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(line[len("data: "):]), &e.data); err != nil {
				s.t.Fatalf("event data %q: %v", line, err)
			}
		}
	}
}

// TestLiveQueryOverSSE: POST /dbs/{db}/query with "live": true streams the
// initial result, the live changes of a running daemon, current marks to
// resume from, and resumes after a dropped connection with what it missed.
func TestLiveQueryOverSSE(t *testing.T) {
	const token = "s3cret"
	p := startPeer(t, t.TempDir(), "--http-token", token)
	auth := []string{"Authorization", "Bearer " + token}
	if r := call(t, "PUT", p.url+"/dbs/live", "", auth...); r.status != http.StatusCreated {
		t.Fatalf("create db: %d %s", r.status, r.raw)
	}
	put := func(id, body string) {
		t.Helper()
		if r := call(t, "PUT", p.url+"/dbs/live/docs/"+id, body, auth...); r.status/100 != 2 {
			t.Fatalf("put %s: %d %s", id, r.status, r.raw)
		}
	}
	put("a", `{"team":"red","n":1}`)
	put("b", `{"team":"blue","n":2}`)
	q := `{"where":[{"path":"/team","op":"==","value":"red"}],"live":true}`
	s := openLive(t, p.url+"/dbs/live/query", token, q)
	if e := s.next(); e.event != "added" || e.data["doc"].(map[string]any)["_id"] != "a" {
		t.Fatalf("first event %+v, want a added", e)
	}
	cur := s.next()
	if cur.event != "current" || cur.id == "" {
		t.Fatalf("after the initial result: %+v, want current with an id", cur)
	}
	put("b", `{"team":"red","n":3}`)
	if e := s.next(); e.event != "added" || e.data["doc"].(map[string]any)["_id"] != "b" {
		t.Fatalf("b turned red: %+v, want b added", e)
	}
	for e := s.next(); ; e = s.next() {
		if e.event == "current" {
			cur = e
			break
		}
	}
	s.close()
	// While the client is away, a leaves the result and c enters it.
	put("a", `{"team":"blue","n":1}`)
	put("c", `{"team":"red","n":4}`)
	s = openLive(t, p.url+"/dbs/live/query", token, fmt.Sprintf(`{"where":[{"path":"/team","op":"==","value":"red"}],"live":true,"since":%s}`, cur.id))
	defer s.close()
	seen := map[string]string{}
	for len(seen) < 2 {
		e := s.next()
		switch e.event {
		case "removed":
			seen[e.data["id"].(string)] = e.event
		case "changed", "added":
			seen[e.data["doc"].(map[string]any)["_id"].(string)] = "put"
		}
	}
	if seen["a"] != "removed" || seen["c"] != "put" {
		t.Fatalf("resumed stream: %v, want a removed and c put", seen)
	}
	if r := call(t, "POST", p.url+"/dbs/live/query", `{"where":[],"live":true,"limit":5}`, auth...); r.status != http.StatusBadRequest {
		t.Fatalf("live query with a limit: %d %s, want 400", r.status, r.raw)
	}
	if r := call(t, "POST", p.url+"/dbs/live/query", `{"since":5}`, auth...); r.status != http.StatusBadRequest {
		t.Fatalf("since without live: %d %s, want 400", r.status, r.raw)
	}
}

type wsMsg map[string]any

func wsDial(t *testing.T, url, token string) (*websocket.Conn, *http.Response, error) {
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	return websocket.Dial(ctx, strings.Replace(url, "http://", "ws://", 1), &websocket.DialOptions{HTTPHeader: h})
}

func wsSend(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("send %s: %v", msg, err)
	}
}

// wsRead reads one message; err is the connection's end.
func wsRead(t *testing.T, c *websocket.Conn) (wsMsg, error) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, data, err := c.Read(ctx)
	if err != nil {
		return nil, err
	}
	var m wsMsg
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("message %q: %v", data, err)
	}
	return m, nil
}

// wsUntil reads messages until one satisfies ok.
func wsUntil(t *testing.T, c *websocket.Conn, what string, ok func(wsMsg) bool) wsMsg {
	t.Helper()
	for {
		m, err := wsRead(t, c)
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok(m) {
			return m
		}
	}
}

// TestWebSocket: GET /dbs/{db}/_ws carries a live query and a changes feed
// on one connection, resumes both after a drop, needs the token on the
// upgrade, and closes with the right code on each kind of bad message.
func TestWebSocket(t *testing.T) {
	const token = "s3cret"
	p := startPeer(t, t.TempDir(), "--http-token", token)
	auth := []string{"Authorization", "Bearer " + token}
	if r := call(t, "PUT", p.url+"/dbs/ws", "", auth...); r.status != http.StatusCreated {
		t.Fatalf("create db: %d %s", r.status, r.raw)
	}
	put := func(id, body string) {
		t.Helper()
		if r := call(t, "PUT", p.url+"/dbs/ws/docs/"+id, body, auth...); r.status/100 != 2 {
			t.Fatalf("put %s: %d %s", id, r.status, r.raw)
		}
	}
	put("x", `{"kind":"note"}`)
	wsURL := p.url + "/dbs/ws/_ws"

	if _, resp, err := wsDial(t, wsURL, ""); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("upgrade without the token: %v %v, want 401", resp, err)
	}
	if _, resp, err := wsDial(t, p.url+"/dbs/nope/_ws", token); err == nil || resp == nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("upgrade on a missing database: %v %v, want 404", resp, err)
	}
	// A browser offers the token as a subprotocol (it cannot set headers).
	dialProto := func(tok string) (*websocket.Conn, *http.Response, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		return websocket.Dial(ctx, strings.Replace(wsURL, "http://", "ws://", 1), &websocket.DialOptions{
			Subprotocols: []string{"barrel", "barrel.token." + base64.RawURLEncoding.EncodeToString([]byte(tok))}})
	}
	if _, resp, err := dialProto("wrong"); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("upgrade with a wrong token as subprotocol: %v %v, want 401", resp, err)
	}
	pc, _, err := dialProto(token)
	if err != nil {
		t.Fatalf("upgrade with the token as subprotocol: %v", err)
	}
	if pc.Subprotocol() != "barrel" {
		t.Fatalf("subprotocol %q selected, want \"barrel\"", pc.Subprotocol())
	}
	wsSend(t, pc, `{"type":"subscribe","sub":"p","changes":{},"since":0}`)
	if m, err := wsRead(t, pc); err != nil || m["type"] != "subscribed" {
		t.Fatalf("subscribe over a subprotocol-authorized connection: %v %v", m, err)
	}
	_ = pc.Close(websocket.StatusNormalClosure, "")

	c, _, err := wsDial(t, wsURL, token)
	if err != nil {
		t.Fatal(err)
	}
	wsSend(t, c, `{"type":"subscribe","sub":"q","query":{"where":[{"path":"/kind","op":"==","value":"note"}]}}`)
	wsSend(t, c, `{"type":"subscribe","sub":"c","changes":{},"since":0}`)
	var qCur, cSeq float64
	gotX, gotChange := false, false
	for !gotX || !gotChange || qCur == 0 {
		m, err := wsRead(t, c)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case m["sub"] == "q" && m["type"] == "added":
			gotX = m["doc"].(map[string]any)["_id"] == "x"
		case m["sub"] == "q" && m["type"] == "current":
			qCur = m["seq"].(float64)
		case m["sub"] == "c" && m["type"] == "changes":
			gotChange = len(m["results"].([]any)) == 1
			cSeq = m["last_seq"].(float64)
		}
	}
	put("y", `{"kind":"note"}`)
	wsUntil(t, c, "y added on q", func(m wsMsg) bool {
		return m["sub"] == "q" && m["type"] == "added" && m["doc"].(map[string]any)["_id"] == "y"
	})
	wsSend(t, c, `{"type":"subscribe","sub":"q","query":{}}`) // A duplicate name breaks the protocol.
	wsUntil(t, c, "the error", func(m wsMsg) bool { return m["type"] == "error" && m["sub"] == nil })
	if _, err := wsRead(t, c); websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Fatalf("after a duplicate subscription: %v, want close 1008", err)
	}

	// Resume both after the drop: what changed since comes, nothing older.
	put("z", `{"kind":"note"}`)
	c, _, err = wsDial(t, wsURL, token)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	wsSend(t, c, fmt.Sprintf(`{"type":"subscribe","sub":"q2","query":{"where":[{"path":"/kind","op":"==","value":"note"}]},"since":%d}`, int64(qCur)))
	wsSend(t, c, fmt.Sprintf(`{"type":"subscribe","sub":"c2","changes":{},"since":%d}`, int64(cSeq)))
	got := map[string]bool{}
	for !got["q2 z"] || !got["c2 z"] {
		m, err := wsRead(t, c)
		if err != nil {
			t.Fatal(err)
		}
		if m["sub"] == "q2" && m["type"] == "changed" {
			got["q2 "+m["doc"].(map[string]any)["_id"].(string)] = true
		}
		if m["sub"] == "c2" && m["type"] == "changes" {
			for _, r := range m["results"].([]any) {
				got["c2 "+r.(map[string]any)["id"].(string)] = true
			}
		}
	}
	if got["c2 x"] {
		t.Fatalf("resumed changes feed repeats x, from before since: %v", got)
	}
	wsSend(t, c, `{"type":"unsubscribe","sub":"q2"}`)
	wsUntil(t, c, "unsubscribed", func(m wsMsg) bool { return m["type"] == "unsubscribed" && m["sub"] == "q2" })
	wsSend(t, c, `{"type":"subscribe","sub":"bad","query":{"where":[{"path":"/kind","op":"~","value":1}]}}`)
	e := wsUntil(t, c, "the refused query", func(m wsMsg) bool { return m["type"] == "error" && m["sub"] == "bad" })
	if e["error"] != "bad_request" {
		t.Fatalf("refused query: %v, want bad_request", e)
	}

	// Each protocol error ends the connection with its code.
	for _, tc := range []struct {
		name string
		send func(*websocket.Conn) error
		code websocket.StatusCode
	}{
		{"malformed JSON", func(c *websocket.Conn) error { return c.Write(t.Context(), websocket.MessageText, []byte(`{"type":`)) }, websocket.StatusInvalidFramePayloadData},
		{"unknown type", func(c *websocket.Conn) error {
			return c.Write(t.Context(), websocket.MessageText, []byte(`{"type":"hello"}`))
		}, websocket.StatusPolicyViolation},
		{"not an object", func(c *websocket.Conn) error { return c.Write(t.Context(), websocket.MessageText, []byte(`[1,2]`)) }, websocket.StatusPolicyViolation},
		{"binary", func(c *websocket.Conn) error { return c.Write(t.Context(), websocket.MessageBinary, []byte{1, 2, 3}) }, websocket.StatusUnsupportedData},
		{"oversized", func(c *websocket.Conn) error {
			return c.Write(t.Context(), websocket.MessageText, []byte(`{"type":"subscribe","sub":"`+strings.Repeat("a", 70<<10)+`"}`))
		}, websocket.StatusMessageTooBig},
	} {
		c, _, err := wsDial(t, wsURL, token)
		if err != nil {
			t.Fatal(err)
		}
		if err := tc.send(c); err != nil {
			t.Fatalf("%s: send: %v", tc.name, err)
		}
		var end error
		for end == nil {
			_, end = wsRead(t, c)
		}
		if got := websocket.CloseStatus(end); got != tc.code {
			t.Errorf("%s: closed with %v (%v), want %v", tc.name, got, end, tc.code)
		}
		c.CloseNow()
	}
}

// TestHTTP2: the API answers HTTP/2 in cleartext (h2c, prior knowledge)
// and, with a certificate configured, HTTP/2 over TLS.
func TestHTTP2(t *testing.T) {
	p := startPeer(t, t.TempDir())
	// Cleartext HTTP/2 with prior knowledge, as golang.org/x/net/http2's
	// Transport{AllowHTTP: true} speaks it (the standard library's
	// Protocols is its successor).
	protos := new(http.Protocols)
	protos.SetUnencryptedHTTP2(true)
	h2c := &http.Client{Transport: &http.Transport{Protocols: protos}}
	resp, err := h2c.Get(p.url + "/healthz")
	if err != nil {
		t.Fatalf("h2c: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Fatalf("h2c /healthz: %d over %s, want 200 over HTTP/2", resp.StatusCode, resp.Proto)
	}

	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	addrFile := filepath.Join(dir, "addr")
	cmd := exec.Command(binPath, "run", "--no-network", "--data", t.TempDir(), "--http", "127.0.0.1:0",
		"--http-addr-file", addrFile, "--http-tls-cert", certFile, "--http-tls-key", keyFile)
	cmd.Env = append(os.Environ(), "BARREL_API=", "BARREL_TOKEN=")
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("TLS daemon stderr:\n%s", stderr.String())
		}
	})
	var addr string
	poll(t, 60*time.Second, "the TLS daemon's address file", func() bool {
		b, err := os.ReadFile(addrFile)
		addr = strings.TrimSpace(string(b))
		return err == nil && addr != ""
	})
	tlsClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	poll(t, 30*time.Second, "https /healthz over HTTP/2", func() bool {
		resp, err := tlsClient.Get("https://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
			t.Fatalf("https /healthz: %d over %s, want 200 over HTTP/2", resp.StatusCode, resp.Proto)
		}
		return true
	})
}

// selfSigned writes a certificate for 127.0.0.1 and its key under dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "barrel test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestQueryFollowCLI: `barrel-peer query DB PATH OP VALUE --follow` prints
// the result, then the events of writes made while it runs.
func TestQueryFollowCLI(t *testing.T) {
	p := startPeer(t, t.TempDir())
	mustStatus(t, http.StatusCreated, "PUT", p.url+"/dbs/f", "")
	mustStatus(t, http.StatusCreated, "PUT", p.url+"/dbs/f/docs/a", `{"team":"red"}`)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, "--api", p.url, "query", "f", "/team", "==", "red", "--follow", "--ids")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func() string {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("query --follow ended (stderr %q)", stderr.String())
			}
			return l
		case <-ctx.Done():
			t.Fatalf("query --follow printed nothing more (stderr %q)", stderr.String())
		}
		return ""
	}
	if l := next(); l != "added a" {
		t.Fatalf("first line %q, want \"added a\"", l)
	}
	if l := next(); !strings.HasPrefix(l, "current ") {
		t.Fatalf("second line %q, want current SEQ", l)
	}
	mustStatus(t, http.StatusCreated, "PUT", p.url+"/dbs/f/docs/b", `{"team":"red"}`)
	mustStatus(t, http.StatusCreated, "PUT", p.url+"/dbs/f/docs/a", `{"team":"blue"}`)
	want := []string{"added b", "removed a"}
	for len(want) > 0 {
		if l := next(); l == want[0] {
			want = want[1:]
		} else if !strings.HasPrefix(l, "current ") {
			t.Fatalf("got %q, want %q", l, want[0])
		}
	}
}
