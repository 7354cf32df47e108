// Command witness is a transparency-log witness written for the tests from the C2SP specs
// (tlog-witness add-checkpoint, tlog-cosignature cosignature/v1), on Go's standard library and
// golang.org/x/mod/sumdb/note and sumdb/tlog: the log's checkpoint signature is checked by the
// note package and the consistency proofs by tlog.CheckTree, so none of the log's own code is
// involved. It listens on 127.0.0.1 only.
//
//	witness NAME SEED_HEX LOG_VKEY_FILE
//
// It prints "listening http://127.0.0.1:PORT" and "vkey NAME+ID+KEY" (its cosigner key, type
// 0x04), then serves POST /add-checkpoint until killed. The log's verifier key is read from
// LOG_VKEY_FILE at each request, so a test can write it once the log exists.
package main

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type state struct {
	size int64
	root tlog.Hash
}

type witness struct {
	name    string
	key     ed25519.PrivateKey
	keyID   [4]byte
	logFile string
	mu      sync.Mutex
	logs    map[string]state
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: witness NAME SEED_HEX LOG_VKEY_FILE")
		os.Exit(2)
	}
	seed, err := hex.DecodeString(os.Args[2])
	if err != nil || len(seed) != ed25519.SeedSize {
		fmt.Fprintln(os.Stderr, "witness: the seed is 32 bytes of hex")
		os.Exit(2)
	}
	w := &witness{name: os.Args[1], key: ed25519.NewKeyFromSeed(seed), logFile: os.Args[3], logs: map[string]state{}}
	pub := w.key.Public().(ed25519.PublicKey)
	h := sha256.Sum256(append(append([]byte(w.name), '\n', 0x04), pub...))
	copy(w.keyID[:], h[:4])
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "witness:", err)
		os.Exit(1)
	}
	fmt.Printf("listening http://%s\n", l.Addr())
	fmt.Printf("vkey %s+%s+%s\n", w.name, hex.EncodeToString(w.keyID[:]), base64.StdEncoding.EncodeToString(append([]byte{0x04}, pub...)))
	os.Stdout.Sync()
	mux := http.NewServeMux()
	mux.HandleFunc("/add-checkpoint", w.addCheckpoint)
	fmt.Fprintln(os.Stderr, http.Serve(l, mux))
}

func fail(rw http.ResponseWriter, code int, why string) {
	http.Error(rw, why, code)
}

func (w *witness) addCheckpoint(rw http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		fail(rw, http.StatusMethodNotAllowed, "POST only")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err != nil {
		fail(rw, http.StatusBadRequest, "cannot read the body")
		return
	}
	// old <size>\n, up to 63 proof lines, a blank line, then the checkpoint note.
	sc := bufio.NewReader(bytes.NewReader(body))
	first, err := sc.ReadString('\n')
	if err != nil || !strings.HasPrefix(first, "old ") {
		fail(rw, http.StatusBadRequest, "no old size line")
		return
	}
	old, err := strconv.ParseInt(strings.TrimSuffix(first[4:], "\n"), 10, 64)
	if err != nil || old < 0 || (old != 0 && strings.HasPrefix(first[4:], "0")) {
		fail(rw, http.StatusBadRequest, "bad old size")
		return
	}
	var proof tlog.TreeProof
	for {
		line, err := sc.ReadString('\n')
		if err != nil {
			fail(rw, http.StatusBadRequest, "no blank line before the checkpoint")
			return
		}
		if line == "\n" {
			break
		}
		b, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(line, "\n"))
		if err != nil || len(b) != tlog.HashSize || len(proof) == 63 {
			fail(rw, http.StatusBadRequest, "bad proof line")
			return
		}
		var h tlog.Hash
		copy(h[:], b)
		proof = append(proof, h)
	}
	msg, _ := io.ReadAll(sc)

	vkey, err := os.ReadFile(w.logFile)
	if err != nil {
		fail(rw, http.StatusInternalServerError, "no log key yet")
		return
	}
	verifier, err := note.NewVerifier(strings.TrimSpace(string(vkey)))
	if err != nil {
		fail(rw, http.StatusInternalServerError, "bad log key")
		return
	}
	text := string(msg[:bytes.Index(msg, []byte("\n\n"))+1])
	origin := text[:strings.IndexByte(text, '\n')]
	if origin != verifier.Name() {
		fail(rw, http.StatusNotFound, "unknown log")
		return
	}
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		fail(rw, http.StatusForbidden, "no valid signature by the log: "+err.Error())
		return
	}
	lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	size, err1 := strconv.ParseInt(lines[1], 10, 64)
	rootBytes, err2 := base64.StdEncoding.DecodeString(lines[2])
	if err1 != nil || err2 != nil || len(rootBytes) != tlog.HashSize {
		fail(rw, http.StatusBadRequest, "bad checkpoint")
		return
	}
	var root tlog.Hash
	copy(root[:], rootBytes)
	if old > size {
		fail(rw, http.StatusBadRequest, "old size is past the checkpoint")
		return
	}

	// Checking against the latest cosigned checkpoint and recording the new one are atomic.
	w.mu.Lock()
	defer w.mu.Unlock()
	latest := w.logs[origin]
	if old != latest.size {
		rw.Header().Set("Content-Type", "text/x.tlog.size")
		rw.WriteHeader(http.StatusConflict)
		fmt.Fprintf(rw, "%d\n", latest.size)
		return
	}
	if old == size {
		if len(proof) != 0 || root != latest.root {
			fail(rw, http.StatusConflict, "same size, another root")
			return
		}
	} else if old == 0 {
		if len(proof) != 0 {
			fail(rw, http.StatusUnprocessableEntity, "a proof from size 0")
			return
		}
	} else if err := tlog.CheckTree(proof, size, root, old, latest.root); err != nil {
		fail(rw, http.StatusUnprocessableEntity, "consistency proof: "+err.Error())
		return
	}
	w.logs[origin] = state{size: size, root: root}

	now := uint64(time.Now().Unix())
	signed := append([]byte(fmt.Sprintf("cosignature/v1\ntime %d\n", now)), []byte(n.Text)...)
	sig := make([]byte, 0, 4+8+ed25519.SignatureSize)
	sig = append(sig, w.keyID[:]...)
	sig = binary.BigEndian.AppendUint64(sig, now)
	sig = append(sig, ed25519.Sign(w.key, signed)...)
	fmt.Fprintf(rw, "— %s %s\n", w.name, base64.StdEncoding.EncodeToString(sig))
	fmt.Fprintf(os.Stderr, "cosigned %s at %d (from %d, %d proof hashes)\n", origin, size, old, len(proof))
}
