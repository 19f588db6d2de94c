package redistest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// WithTLS serves TLS only (--tls-port, --port 0) with a certificate for
// 127.0.0.1 issued by a CA made for the test; CAFile returns that CA for
// clients to trust. Clients need no certificate of their own.
func WithTLS() Option {
	return func(c *config) { c.tls = true }
}

// CAFile returns the PEM file of the CA that issued a WithTLS server's
// certificate, "" without TLS.
func (s *Server) CAFile() string { return s.caFile }

// testCA is one CA per process: a client that loaded it as a system root
// (SSL_CERT_FILE is read once per process) keeps trusting every later
// server.
var testCA struct {
	once sync.Once
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
	der  []byte
	err  error
}

func processCA() (*ecdsa.PrivateKey, *x509.Certificate, []byte, error) {
	testCA.once.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			testCA.err = err
			return
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "redistest CA"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(7 * 24 * time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			testCA.err = err
			return
		}
		testCA.key, testCA.der = key, der
		testCA.cert, testCA.err = x509.ParseCertificate(der)
	})
	return testCA.key, testCA.cert, testCA.der, testCA.err
}

// setupTLS writes the process's CA and a server certificate into dir and
// returns the redis-server arguments and the client configuration trusting
// the CA.
func setupTLS(t testing.TB, dir string) ([]string, *tls.Config, string) {
	t.Helper()
	caKey, ca, caDER, err := processCA()
	must(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	must(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	must(t, err)
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		must(t, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600))
		return p
	}
	caFile := write("ca.pem", "CERTIFICATE", caDER)
	certFile := write("server.pem", "CERTIFICATE", der)
	keyFile := write("server-key.pem", "EC PRIVATE KEY", keyDER)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	args := []string{"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-ca-cert-file", caFile, "--tls-auth-clients", "no"}
	return args, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, caFile
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
}
