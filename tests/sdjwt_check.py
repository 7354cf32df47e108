"""An independent check of a delegate SD-JWT chain (AP2 v0.2 style) with the OpenWallet
Foundation's SD-JWT reference library, `sd_jwt` 0.10.4 (vendored under tests/vendor/python;
.ci/lib.sh's ensure_sdjwt_python makes a venv with it and names its python ARI_SDJWT_PYTHON).

    "$ARI_SDJWT_PYTHON" tests/sdjwt_check.py < input.json
    "$ARI_SDJWT_PYTHON" tests/sdjwt_check.py --self-test tests/vectors/ap2/delegate_sd_jwt_vectors.json

Input on stdin: {"chain": "<root>~~<hop>...", "root_jwk": {public P-256 JWK}, "aud": ..., "nonce": ...}.
On success it says on stderr which mandate the root discloses, prints one JSON line on stdout
saying what was verified (segments, mandates, each hop's typ and binding) and exits 0; else it
says why not on stderr and exits 1 (2 for unusable input). --self-test prints a line per case.

A chain is segments `<jws>~<disclosure>~...~` joined by `~~` (each segment but the last gives
its final `~` to the join). Every segment is handed to the library's SDJWTVerifier as an
SD-JWT on its own: it checks the JWS under the key we give its callback and resolves the
disclosures. The root's key is root_jwk; each hop's key is the `cnf.jwk` of the mandate the
segment before it discloses (its one `delegate_payload` item).

The hops are not the library's key-binding JWTs: its KB-JWT check insists on typ `kb+jwt`
and finds the holder key in a top-level `cnf`, whereas a hop is typ `kb+sd-jwt` (last) or
`kb+sd-jwt+kb` (delegating), carries disclosures of its own, and the key sits inside the
disclosed mandate. So the library verifies each hop as an SD-JWT, and the binding claims
(typ, `sd_hash` or `issuer_jwt_hash`, and on the last hop `iat`, `aud`, `nonce`) are checked
here, with the hash computed the way the library computes its own `sd_hash`.

Not checked: `exp`/`iat` against the clock (the library leaves that to its caller, and the
golden vectors are frozen in time); the daemon's Rust tests do that.
"""
import json
import sys

from jwcrypto.jwk import JWK
from sd_jwt.common import SD_DIGESTS_KEY, SD_LIST_PREFIX
from sd_jwt.verifier import SDJWTVerifier

TERMINAL_TYPS = ("kb+sd-jwt", "kb-sd-jwt")
DELEGATION_TYPS = ("kb+sd-jwt+kb", "kb-sd-jwt+kb")


class Refused(Exception):
    """The chain fails a check; the message says which and where."""


def split_chain(chain):
    if not isinstance(chain, str) or not chain.endswith("~"):
        raise Refused("the chain is not text ending in '~'")
    parts = chain.split("~~")
    if len(parts) < 2:
        raise Refused("no '~~' in the chain: a root alone, no delegation hop")
    return [p + "~" for p in parts[:-1]] + [parts[-1]]


def public_p256(jwk, what):
    if not isinstance(jwk, dict) or jwk.get("kty") != "EC" or jwk.get("crv") != "P-256" or "d" in jwk:
        raise Refused(f"{what} is not a public P-256 JWK: {jwk!r}")
    return JWK.from_json(json.dumps(jwk))


def unreferenced(verifier):
    """Digests of presented disclosures that nothing signed points to. The library resolves
    only what the payload names and passes over the rest in silence; RFC 9901 wants such a
    presentation refused, so it is done here from the library's own digest table."""
    table = verifier._hash_to_decoded_disclosure
    reached = set()

    def walk(v):
        if isinstance(v, dict):
            names = list(v.get(SD_DIGESTS_KEY, []))
            if len(v) == 1 and isinstance(v.get(SD_LIST_PREFIX), str):
                names.append(v[SD_LIST_PREFIX])
            for d in names:
                if d in table and d not in reached:
                    reached.add(d)
                    walk(table[d][-1])
            for k, x in v.items():
                if k != SD_DIGESTS_KEY:
                    walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(verifier._sd_jwt_payload)
    return sorted(set(table) - reached)


def verify_segment(text, key, n):
    """The library checks segment n's signature under `key` and resolves its disclosures."""
    header = {}

    def key_for(_iss, jose_header):
        header.update(jose_header)
        return key

    try:
        verifier = SDJWTVerifier(text, key_for, serialization_format="compact")
        payload = verifier.get_verified_payload()
    except Exception as e:  # jwcrypto's signature errors, the library's ValueErrors, bad JSON
        raise Refused(f"segment {n}: sd_jwt refused it: {type(e).__name__}: {e}") from e
    if verifier._unverified_input_key_binding_jwt != "":
        raise Refused(f"segment {n}: does not end in '~' (something after the last disclosure)")
    if header.get("alg") != "ES256":
        raise Refused(f"segment {n}: alg {header.get('alg')!r}, not ES256")
    stray = unreferenced(verifier)
    if stray:
        raise Refused(f"segment {n}: a disclosure nothing in the payload names ({stray[0]})")
    items = payload.get("delegate_payload")
    if not isinstance(items, list) or len(items) != 1 or not isinstance(items[0], dict):
        count = len(items) if isinstance(items, list) else "no"
        raise Refused(f"segment {n}: delegate_payload discloses {count} items, not exactly one mandate")
    return verifier, header, payload, items[0]


def presented_hashes(verifier):
    """What a hop after this segment may bind to: `sd_hash` over the segment as presented,
    rebuilt and hashed exactly as the library's KB-JWT check does it, and `issuer_jwt_hash`
    over the JWS alone, with the same hash helper. (Both helpers are the library's private
    methods: it exposes no public hashing function.)"""
    as_presented = verifier._combine(verifier._unverified_input_sd_jwt, *verifier._input_disclosures, "")
    return {
        "sd_hash": verifier._b64hash(as_presented.encode("ascii")),
        "issuer_jwt_hash": verifier._b64hash(verifier._unverified_input_sd_jwt.encode("ascii")),
    }, as_presented


def check_chain(chain, root_jwk, aud, nonce):
    segments = split_chain(chain)
    last = len(segments) - 1
    key = public_p256(root_jwk, "root_jwk")
    mandates, hops = [], []
    previous = None
    for n, text in enumerate(segments):
        verifier, header, payload, mandate = verify_segment(text, key, n)
        if n > 0:
            typ = header.get("typ")
            wanted = TERMINAL_TYPS if n == last else DELEGATION_TYPS
            if typ not in wanted:
                raise Refused(f"segment {n}: typ {typ!r} where {wanted[0]} was required")
            hashes, as_presented = presented_hashes(previous)
            assert as_presented == segments[n - 1]
            bindings = [c for c in ("sd_hash", "issuer_jwt_hash") if c in payload]
            if len(bindings) != 1:
                raise Refused(f"segment {n}: needs exactly one of sd_hash / issuer_jwt_hash, has {bindings}")
            claim = bindings[0]
            if payload[claim] != hashes[claim]:
                raise Refused(f"segment {n}: {claim} is not the hash of segment {n - 1} as presented")
            hops.append({"segment": n, "typ": typ, "binding": claim, "kid": header.get("kid")})
        if n == last:
            if not isinstance(payload.get("iat"), int):
                raise Refused(f"segment {n}: the last hop has no integer iat")
            for claim, want in (("aud", aud), ("nonce", nonce)):
                if payload.get(claim) != want:
                    raise Refused(f"segment {n}: {claim} {payload.get(claim)!r} is not the expected {want!r}")
            if "cnf" in mandate:
                raise Refused(f"segment {n}: the last hop's mandate names a further holder (cnf)")
        else:
            key = public_p256((mandate.get("cnf") or {}).get("jwk"), f"segment {n}'s cnf.jwk")
        mandates.append(mandate)
        previous = verifier
    return {
        "verified_by": "sd_jwt 0.10.4 SDJWTVerifier",
        "segments": len(segments),
        "root_mandate": mandates[0],
        "hops": hops,
        "terminal_mandate": mandates[-1],
        "aud": aud,
        "nonce": nonce,
    }


def flip_signature(segment):
    """The segment with one character in the middle of its JWS signature changed."""
    jwt, rest = segment.split("~", 1)
    h, p, s = jwt.split(".")
    return f"{h}.{p}.{s[:10]}{'B' if s[10] == 'A' else 'A'}{s[11:]}~{rest}"


def self_test(path):
    """The AP2 golden chains must pass; edited copies must fail, each for its own reason."""
    vectors = json.load(open(path))
    results = []  # (ok, line)

    def expect(name, chain, jwk, aud, nonce, refusal=None):
        try:
            got = check_chain(chain, jwk, aud, nonce)
            ok = refusal is None
            said = (f"verified {got['segments']} segments, root mandate {got['root_mandate']['vct']}, "
                    f"last {got['terminal_mandate']['vct']}")
        except Refused as e:
            ok = refusal is not None and refusal in str(e)
            said = f"refused: {e}"
        results.append(ok)
        want = "pass" if refusal is None else f"fail ({refusal})"
        print(f"{'ok  ' if ok else 'FAIL'} {name}: expected to {want}; {said}")

    chains = [v for v in vectors["vectors"] if "~~" in v["compact_serialization"]]
    for v in chains:
        expect(v["id"], v["compact_serialization"], v["root_public_jwk"],
               v["verification"]["expected_aud"], v["verification"]["expected_nonce"])

    other_key = {k: x for k, x in vectors["keys"]["pinned"]["merchant-key"].items() if k != "d"}
    for v in chains:
        if v["id"] not in ("single-hop-payment-chain", "multi-hop-payment-chain"):
            continue
        chain, jwk = v["compact_serialization"], v["root_public_jwk"]
        aud, nonce = v["verification"]["expected_aud"], v["verification"]["expected_nonce"]
        segs = split_chain(chain)
        join = lambda ss: "~~".join(s[:-1] for s in ss[:-1]) + "~~" + ss[-1]
        name = lambda what: f"{v['id']} with {what}"
        expect(name("a flipped root signature char"), join([flip_signature(segs[0])] + segs[1:]),
               jwk, aud, nonce, "segment 0: sd_jwt refused")
        expect(name("a flipped last-hop signature char"), join(segs[:-1] + [flip_signature(segs[-1])]),
               jwk, aud, nonce, f"segment {len(segs) - 1}: sd_jwt refused")
        expect(name("a wrong nonce"), chain, jwk, aud, nonce + "-other", "nonce")
        expect(name("a wrong aud"), chain, jwk, aud + "-other", nonce, "aud")
        expect(name("another root key"), chain, other_key, aud, nonce, "segment 0: sd_jwt refused")
        # Leave out a root disclosure other than the mandate itself: the root still verifies,
        # but the first hop's sd_hash covered it.
        jwt, *discs, _ = segs[0].split("~")
        member = next(i for i, d in enumerate(discs)
                      if len(json.loads(SDJWTVerifier._base64url_decode(d))) == 3)
        dropped = "~".join([jwt] + discs[:member] + discs[member + 1:]) + "~"
        expect(name("a root disclosure left out"), join([dropped] + segs[1:]), jwk, aud, nonce,
               "segment 1: sd_hash is not the hash")
        expect(name("the root alone"), segs[0], jwk, aud, nonce, "no '~~'")
        extra = SDJWTVerifier._base64url_encode(b'["c2FsdHNhbHRzYWx0c2FsdA", "extra", 1]')
        expect(name("a disclosure nothing names added to the last hop"), chain + extra + "~",
               jwk, aud, nonce, f"segment {len(segs) - 1}: a disclosure nothing in the payload names")
        if len(segs) > 2:
            expect(name("the last hop cut off"), join(segs[:-1]), jwk, aud, nonce,
                   "typ 'kb+sd-jwt+kb' where kb+sd-jwt was required")
    passed = sum(results)
    print(f"sdjwt_check: {passed} passed, {len(results) - passed} failed")
    return 0 if results and all(results) else 1


def main(argv):
    if len(argv) == 3 and argv[1] == "--self-test":
        return self_test(argv[2])
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        given = json.load(sys.stdin)
        chain, root_jwk, aud, nonce = (given[k] for k in ("chain", "root_jwk", "aud", "nonce"))
    except (ValueError, KeyError, TypeError) as e:
        print(f"sdjwt_check: unusable input ({type(e).__name__}: {e}); see --help", file=sys.stderr)
        return 2
    try:
        got = check_chain(chain, root_jwk, aud, nonce)
        print("sd_jwt verified the root and disclosed this mandate:", json.dumps(got["root_mandate"]),
              file=sys.stderr)
        print(json.dumps(got, sort_keys=True))
    except Refused as e:
        print(f"sdjwt_check: REFUSED: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
