#!/usr/bin/env bash
# Sign and send a request with replayguard's hmac scheme (RG1-HMAC-SHA256)
# using openssl and curl.
#
#   rg_sign.sh --key-id ID --secret SECRET [--idempotency-key K] \
#       -X METHOD [-d BODY | --data-file FILE] [-H 'Name: value'] \
#       [--print-headers] URL
#
# Without --print-headers the request is sent with curl and "<status>\n<body>"
# printed. With --print-headers the four signing headers (and Idempotency-Key
# when given) are printed as "Name: value" lines and nothing is sent.
# A secret written "base64:<std base64>" is decoded.
set -euo pipefail

usage() {
	sed -n '5,7p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}
die() {
	echo "rg_sign: $*" >&2
	exit 2
}

key_id="" secret="" idem="" method="GET" data="" data_file="" have_data=0 print_headers=0 url=""
extra=()
while [ $# -gt 0 ]; do
	case "$1" in
	--key-id) key_id="${2?}"; shift 2 ;;
	--secret) secret="${2?}"; shift 2 ;;
	--idempotency-key) idem="${2?}"; shift 2 ;;
	-X | --request) method="${2?}"; shift 2 ;;
	-d | --data) data="${2?}"; have_data=1; shift 2 ;;
	--data-file) data_file="${2?}"; shift 2 ;;
	-H | --header) extra+=(-H "${2?}"); shift 2 ;;
	--print-headers) print_headers=1; shift ;;
	-h | --help) usage ;;
	-*) die "unknown option $1" ;;
	*) [ -z "$url" ] || die "more than one URL"; url="$1"; shift ;;
	esac
done
[ -n "$key_id" ] || die "--key-id is required"
[ -n "$secret" ] || die "--secret is required"
[ -n "$url" ] || die "a URL is required"
[ "$have_data" = 0 ] || [ -z "$data_file" ] || die "-d and --data-file are exclusive"
# The method is signed byte for byte as sent: send it upper-cased and sign
# what is sent.
method="${method^^}"

# Host and request-target: the URL's authority (lowercased, no userinfo) and
# path (default "/") plus "?query" when present. The fragment is never sent.
re='^([Hh][Tt][Tt][Pp][Ss]?)://([^/?#]+)([^#]*)'
[[ "$url" =~ $re ]] || die "URL must be http:// or https:// with a host"
scheme="${BASH_REMATCH[1],,}"
authority="${BASH_REMATCH[2]##*@}"
rest="${BASH_REMATCH[3]}"
path="${rest%%\?*}"
query=""
[[ "$rest" == *\?* ]] && query="${rest#*\?}"
[ -n "$path" ] || path="/"
target="$path"
[ -z "$query" ] || target="$path?$query"
host="${authority,,}"
send_url="$scheme://$authority$target"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
body="$tmp/body"
if [ -n "$data_file" ]; then
	cp -- "$data_file" "$body"
else
	printf '%s' "$data" >"$body"
fi

# MAC key: "base64:..." decoded to hex for openssl, else the string's bytes.
if [[ "$secret" == base64:* ]]; then
	b64re='^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$'
	[[ "${secret#base64:}" =~ $b64re ]] || die "secret: invalid base64"
	hexkey="$(printf '%s' "${secret#base64:}" | openssl base64 -d -A | od -An -v -tx1 | tr -d ' \n')"
	[ -n "$hexkey" ] || die "secret: invalid or empty base64"
	macopt=(-mac HMAC -macopt "hexkey:$hexkey")
else
	macopt=(-hmac "$secret")
fi

ts="$(date +%s)"
if [ -r /proc/sys/kernel/random/uuid ]; then
	nonce="$(cat /proc/sys/kernel/random/uuid)"
elif command -v uuidgen >/dev/null 2>&1; then
	nonce="$(uuidgen | tr 'A-F' 'a-f')"
else
	nonce="$(openssl rand -hex 16)"
fi
body_hash="$(openssl dgst -sha256 -r "$body" | cut -d' ' -f1)"

printf 'RG1-HMAC-SHA256\n%s\n%s\n%s\n%s\n%s\n%s\n%s' \
	"$method" "$host" "$target" "$ts" "$nonce" "$idem" "$body_hash" >"$tmp/sts"
sig="$(openssl dgst -sha256 "${macopt[@]}" -binary "$tmp/sts" | openssl base64 -A)"

headers=(
	"X-Key-Id: $key_id"
	"X-Timestamp: $ts"
	"X-Nonce: $nonce"
	"X-Signature: v1=$sig"
)
[ -z "$idem" ] || headers+=("Idempotency-Key: $idem")

if [ "$print_headers" = 1 ]; then
	printf '%s\n' "${headers[@]}"
	exit 0
fi

args=(--silent --show-error --path-as-is -X "$method" -o "$tmp/resp" -w '%{http_code}')
for h in "${headers[@]}"; do
	args+=(-H "$h")
done
if [ "$have_data" = 1 ] || [ -n "$data_file" ]; then
	args+=(--data-binary "@$body")
fi
status="$(curl "${args[@]}" "${extra[@]}" "$send_url")"
printf '%s\n' "$status"
cat "$tmp/resp"
