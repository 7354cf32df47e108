// Command tlogcheck reads the evidence log that arid publishes with Go's own transparency-log
// packages, golang.org/x/mod/sumdb/note and golang.org/x/mod/sumdb/tlog, as an independent
// check of the formats. Built by the tests in GOPATH mode against Debian's
// golang-golang-x-mod-dev; it needs no network.
//
//	tlogcheck note VKEY NOTE_FILE            verify a signed note with a verifier key
//	tlogcheck inclusion VKEY DIR INDEX       read DIR/checkpoint and DIR/tile/..., prove that
//	                                         entry INDEX (from its entry bundle) is in the tree
//	tlogcheck proof VKEY FILE                check a C2SP tlog-proof whose extra is the entry
//
// It prints what it verified and exits 0, or prints why not and exits 1.
package main

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "tlogcheck:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 3 {
		return errors.New("usage: tlogcheck note VKEY FILE | inclusion VKEY DIR INDEX")
	}
	verifier, err := note.NewVerifier(args[1])
	if err != nil {
		return fmt.Errorf("verifier key: %w", err)
	}
	switch args[0] {
	case "note":
		msg, err := os.ReadFile(args[2])
		if err != nil {
			return err
		}
		n, err := note.Open(msg, note.VerifierList(verifier))
		if err != nil {
			return fmt.Errorf("note: %w", err)
		}
		fmt.Printf("verified by %s+%08x\n", n.Sigs[0].Name, n.Sigs[0].Hash)
		return nil
	case "proof":
		text, err := os.ReadFile(args[2])
		if err != nil {
			return err
		}
		return tlogProof(verifier, string(text))
	case "inclusion":
		if len(args) != 4 {
			return errors.New("usage: tlogcheck inclusion VKEY DIR INDEX")
		}
		index, err := strconv.ParseInt(args[3], 10, 64)
		if err != nil {
			return err
		}
		return inclusion(verifier, args[2], index)
	}
	return fmt.Errorf("unknown command %q", args[0])
}

func inclusion(verifier note.Verifier, dir string, index int64) error {
	msg, err := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if err != nil {
		return err
	}
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	if len(lines) < 3 {
		return errors.New("checkpoint: fewer than three lines")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		return fmt.Errorf("checkpoint size: %w", err)
	}
	rootBytes, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(rootBytes) != tlog.HashSize {
		return errors.New("checkpoint root: not a base64 SHA-256 hash")
	}
	var root tlog.Hash
	copy(root[:], rootBytes)
	if index < 0 || index >= size {
		return fmt.Errorf("entry %d is not in a tree of %d", index, size)
	}

	// The entry, from its bundle: the level-0 tile that holds it, at the width this tree has.
	leafTile := tlog.TileForIndex(8, tlog.StoredHashIndex(0, index))
	if leafTile.W = int(size - leafTile.N*256); leafTile.W > 256 {
		leafTile.W = 256
	}
	bundlePath := strings.Replace(c2sp(leafTile.Path()), "tile/0/", "tile/entries/", 1)
	bundle, err := os.ReadFile(filepath.Join(dir, bundlePath))
	if err != nil {
		return fmt.Errorf("entry bundle: %w", err)
	}
	entry, err := nth(bundle, int(index-leafTile.N*256))
	if err != nil {
		return fmt.Errorf("entry bundle %s: %w", bundlePath, err)
	}

	// Every hash comes from tiles that TileHashReader checks against the signed root.
	reader := tlog.TileHashReader(tlog.Tree{N: size, Hash: root}, tiles{dir})
	proof, err := tlog.ProveRecord(size, index, reader)
	if err != nil {
		return fmt.Errorf("proving entry %d from the tiles: %w", index, err)
	}
	if err := tlog.CheckRecord(proof, size, root, index, tlog.RecordHash(entry)); err != nil {
		return fmt.Errorf("entry %d: %w", index, err)
	}
	fmt.Printf("entry %d is in %s at size %d (%d proof hashes, %d entry bytes)\n", index, lines[0], size, len(proof), len(entry))
	return nil
}

// tlogProof checks c2sp.org/tlog-proof@v1 text: extra (the entry), index, path, checkpoint.
func tlogProof(verifier note.Verifier, text string) error {
	head, msg, ok := strings.Cut(text, "\n\n")
	if !ok {
		return errors.New("proof: no blank line before the checkpoint")
	}
	lines := strings.Split(head, "\n")
	if lines[0] != "c2sp.org/tlog-proof@v1" {
		return errors.New("proof: not c2sp.org/tlog-proof@v1")
	}
	lines = lines[1:]
	var entry []byte
	if len(lines) > 0 && strings.HasPrefix(lines[0], "extra ") {
		e, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(lines[0], "extra "))
		if err != nil {
			return fmt.Errorf("proof extra: %w", err)
		}
		entry, lines = e, lines[1:]
	}
	if entry == nil || len(lines) == 0 || !strings.HasPrefix(lines[0], "index ") {
		return errors.New("proof: no extra (entry) or no index line")
	}
	index, err := strconv.ParseInt(strings.TrimPrefix(lines[0], "index "), 10, 64)
	if err != nil {
		return fmt.Errorf("proof index: %w", err)
	}
	var path tlog.RecordProof
	for _, l := range lines[1:] {
		b, err := base64.StdEncoding.DecodeString(l)
		if err != nil || len(b) != tlog.HashSize {
			return errors.New("proof: bad path hash")
		}
		var h tlog.Hash
		copy(h[:], b)
		path = append(path, h)
	}
	n, err := note.Open([]byte(msg), note.VerifierList(verifier))
	if err != nil {
		return fmt.Errorf("proof checkpoint: %w", err)
	}
	cp := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	size, err := strconv.ParseInt(cp[1], 10, 64)
	if err != nil {
		return err
	}
	rootBytes, err := base64.StdEncoding.DecodeString(cp[2])
	if err != nil || len(rootBytes) != tlog.HashSize {
		return errors.New("proof checkpoint: bad root")
	}
	var root tlog.Hash
	copy(root[:], rootBytes)
	if err := tlog.CheckRecord(path, size, root, index, tlog.RecordHash(entry)); err != nil {
		return fmt.Errorf("entry %d: %w", index, err)
	}
	fmt.Printf("entry %d is in %s at size %d (%d entry bytes)\n", index, cp[0], size, len(entry))
	return nil
}

// c2sp turns x/mod's tile path (tile/H/L/N) into C2SP tlog-tiles' (tile/L/N), height 8 implied.
func c2sp(path string) string {
	return strings.Replace(path, "tile/8/", "tile/", 1)
}

// nth returns the i-th entry of a bundle of big-endian uint16 length-prefixed entries.
func nth(bundle []byte, i int) ([]byte, error) {
	for k := 0; ; k++ {
		if len(bundle) < 2 {
			return nil, fmt.Errorf("no entry %d", i)
		}
		l := int(binary.BigEndian.Uint16(bundle))
		if len(bundle) < 2+l {
			return nil, errors.New("cut short")
		}
		if k == i {
			return bundle[2 : 2+l], nil
		}
		bundle = bundle[2+l:]
	}
}

type tiles struct{ dir string }

func (tiles) Height() int { return 8 }

func (t tiles) ReadTiles(ts []tlog.Tile) ([][]byte, error) {
	data := make([][]byte, len(ts))
	for i, tile := range ts {
		b, err := os.ReadFile(filepath.Join(t.dir, c2sp(tile.Path())))
		if err != nil {
			return nil, err
		}
		data[i] = b
	}
	return data, nil
}

func (tiles) SaveTiles([]tlog.Tile, [][]byte) {}
