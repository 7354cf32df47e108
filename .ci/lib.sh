# Shared by .ci/demo, .ci/test and .ci/package: friendly step output and installing what is missing.
# Sourced, not executed.

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() { printf '\nerror: %s\n' "$*" >&2; exit 1; }

# Debian packages the project needs at run and test time:
#   softhsm2   the PKCS#11 token used by dev mode and the tests
#   openssl    independent checks of CSRs and certificates in the tests and the demo
#   util-linux setpriv, to run a client as another user in the tests
#   gcc, libc6-dev  to build the bundled SQLite
#   python3-jwt, python3-cryptography  an independent JOSE implementation (PyJWT) that the
#              tests use to check vouchers and payment authorizations
#   libssl-dev OpenSSL, through which the witness client speaks HTTPS (and trusts the system CAs)
#   libtss2-dev, pkg-config  the TPM software stack the TPM backend links against (tss-esapi)
#   swtpm, swtpm-tools  the software TPM that dev mode, the tests and the benchmark start
#   tpm2-tools  tpm2_checkquote, an independent check of the daemon's quotes in the tests
#   dpkg-dev, lintian  .ci/package and its test: dpkg-shlibdeps for the package's dependencies,
#              lintian to check the package (cargo-deb itself comes from `cargo install`)
#   python3-prometheus-client  reads `arictl metrics` in a test, as Prometheus would
#   systemd, udev  systemd-analyze, systemd-socket-activate, sysusers/tmpfiles and udevadm
#              check the units and rules offline
ARI_PACKAGES="softhsm2 openssl util-linux gcc libc6-dev python3 python3-jwt python3-cryptography python3-prometheus-client libssl-dev libtss2-dev pkg-config swtpm swtpm-tools tpm2-tools dpkg-dev lintian systemd udev"

ensure_packages() {
  local missing=() pkg
  for pkg in $ARI_PACKAGES; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    note "system packages present: $ARI_PACKAGES"
    return
  fi
  say "Installing missing Debian packages: ${missing[*]}"
  as_root apt-get update -q || die "apt-get update failed"
  as_root apt-get install -y -q --no-install-recommends "${missing[@]}" || die "apt-get install failed"
}

# Runs a command as root: directly when we are root, else through sudo (never prompting in CI).
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive "$@"
    return
  fi
  command -v sudo >/dev/null || die "not root and no sudo; run as root: $*"
  local sudo=(sudo)
  [ "${CI:-}" = "true" ] && sudo=(sudo -n)
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive "$@"
}

# promtool, the Prometheus project's own checker of metrics expositions, from Debian's
# `prometheus` package. Only that program is needed: the package is downloaded and unpacked into
# target/tools rather than installed, since installing it would also start a Prometheus server
# that listens on every interface. The tests find it through ARI_PROMTOOL.
ensure_promtool() {
  local dir=target/tools/prometheus tmp
  if [ ! -x "$dir/usr/bin/promtool" ]; then
    note "fetching promtool: Debian's prometheus package, unpacked into $dir (not installed)"
    tmp=$(mktemp -d)
    fetch_prometheus_deb() { (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root prometheus >/dev/null); }
    if ! fetch_prometheus_deb; then
      # No package lists yet on this machine: read them, as ensure_packages would.
      as_root apt-get update -q || die "apt-get update failed"
      fetch_prometheus_deb || die "apt-get download prometheus failed"
    fi
    mkdir -p "$dir"
    dpkg-deb -x "$tmp"/prometheus_*.deb "$dir" || die "cannot unpack the prometheus package"
    rm -rf "$tmp"
  fi
  ARI_PROMTOOL="$PWD/$dir/usr/bin/promtool"
  export ARI_PROMTOOL
  note "$("$ARI_PROMTOOL" --version 2>&1 | head -1)"
}

# The OpenWallet Foundation's SD-JWT reference library (`sd_jwt`), which checks the delegate
# SD-JWT chains the daemon emits (tests/sdjwt_check.py). Its wheels, and the newer jwcrypto
# (and typing_extensions) than Debian 12 ships, are vendored in tests/vendor/python: CI has no
# PyPI. They go into a venv on Debian's python3 that also sees Debian's python3-cryptography
# and python3-yaml (--system-site-packages; these and python3-venv are in .ci/test's list),
# installed from those files only, after their SHA256SUMS are checked. The tests find its
# python through ARI_SDJWT_PYTHON.
ensure_sdjwt_python() {
  local venv=target/tools/sdjwt-venv wheels=tests/vendor/python stamp versions listed
  (cd "$wheels" && sha256sum --quiet --strict -c SHA256SUMS) || die "a wheel in $wheels does not match its SHA256SUMS"
  stamp=$(cat "$wheels/SHA256SUMS")
  # Made again when missing or when the vendored wheels have changed since.
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/vendored.sha256" 2>/dev/null)" != "$stamp" ]; then
    note "making $venv: Debian's python3, and the wheels SHA256SUMS lists in $wheels (no index)"
    rm -rf "$venv"
    /usr/bin/python3 -m venv --system-site-packages "$venv" || die "cannot make $venv (is Debian's python3-venv installed?)"
    mapfile -t listed < <(awk -v d="$wheels" '{sub(/^\*/, "", $2); print d "/" $2}' "$wheels/SHA256SUMS")
    "$venv/bin/pip" install -q --no-index --no-deps --disable-pip-version-check "${listed[@]}" \
      || die "cannot install the wheels in $wheels"
    printf '%s\n' "$stamp" >"$venv/vendored.sha256"
  fi
  ARI_SDJWT_PYTHON="$PWD/$venv/bin/python"
  export ARI_SDJWT_PYTHON
  versions=$("$ARI_SDJWT_PYTHON" -c 'import sd_jwt, jwcrypto.version as j, cryptography as c, yaml as y
print(f"sd_jwt {sd_jwt.__version__}, jwcrypto {j.__version__}, cryptography {c.__version__}, PyYAML {y.__version__}")') \
    || die "the venv at $venv cannot import sd_jwt and its dependencies"
  note "$versions (in $venv)"
}

ensure_rust() {
  command -v cargo >/dev/null || die "Rust is not installed: see https://rustup.rs (then open a new shell)"
  note "$(cargo --version)"
}

# The WebAssembly target the core crate is checked on (a verifier in a browser embeds it).
ensure_wasm_target() {
  if rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    note "wasm32-unknown-unknown: installed"
  else
    note "adding the wasm32-unknown-unknown target (rustup target add)"
    rustup target add wasm32-unknown-unknown
  fi
}
