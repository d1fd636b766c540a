// gohost: a Go net/http server that reverse-proxies every request to a target URL. Tests put it
// in front of the collector so that what the filter exports first passes Go's own request
// checks (notably the Host header: Go answers 400 to `Host: outbound|9411||...`), as it would
// at Jaeger or the OpenTelemetry Collector. Stdlib only.
//
// Usage: gohost -listen 127.0.0.1:0 -target http://127.0.0.1:9411
// Prints "listening on HOST:PORT" on stdout once it accepts connections; logs each request's
// Host and path, and Go's answer, on stderr.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	target := flag.String("target", "", "URL to proxy to (the collector)")
	flag.Parse()
	u, err := url.Parse(*target)
	if err != nil || u.Host == "" {
		log.Fatalf("-target must be a URL, got %q", *target)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.Printf("%s %s Host=%q", r.Method, r.URL.Path, r.Host)
		proxy.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	os.Stdout.Sync()
	log.Fatal(http.Serve(ln, handler))
}
