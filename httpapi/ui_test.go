package httpapi

import (
	"net/http"
	"testing"

	"github.com/barrel-db/barrel/ui"
)

// TestUIMount: with a token set, the dashboard's files are served without
// it, /ui redirects to /ui/, and the API still wants the token.
func TestUIMount(t *testing.T) {
	srv := newTestServer(t, Config{Token: "t0k", UI: ui.Handler()})
	client := srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, tc := range []struct {
		path, auth string
		status     int
	}{
		{"/ui/", "", http.StatusOK},
		{"/ui/app.js", "", http.StatusOK},
		{"/ui/style.css", "", http.StatusOK},
		{"/ui", "", http.StatusMovedPermanently},
		{"/ui/missing.html", "", http.StatusNotFound},
		{"/dbs", "", http.StatusUnauthorized},
		{"/", "", http.StatusUnauthorized},
		{"/uix", "", http.StatusUnauthorized},
		{"/dbs", "Bearer t0k", http.StatusOK},
	} {
		t.Run(tc.path+" "+tc.auth, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("got %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.status == http.StatusOK && tc.path != "/dbs" && resp.Header.Get("Content-Security-Policy") == "" {
				t.Error("a dashboard file without Content-Security-Policy")
			}
		})
	}
}
