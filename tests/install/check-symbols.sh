#!/usr/bin/env bash
# check-symbols.sh -- libflashmeta.so exports its API and nothing else.
#
#   check-symbols.sh --lib LIBFILE --soname NAME --node NODE -- HEADER...
#
# HEADERs are the installed ones (lib/CMakeLists.txt, FM_PUBLIC_HEADERS).
# The API is every function they declare, comments and preprocessor lines
# removed, minus their static inline functions.  Checks, each a failure of
# its own:
#   - the SONAME is NAME
#   - every exported symbol (nm -D --defined-only) is a function of the API
#     (so starts with fm_), versioned NODE
#   - every function of the API is exported (else a user's link fails)
# Exit 0 when all hold, 1 with every offender listed.
set -euo pipefail

lib='' soname='' node=''
while (($#)); do
	case $1 in
	--lib) lib=$2; shift 2 ;;
	--soname) soname=$2; shift 2 ;;
	--node) node=$2; shift 2 ;;
	--) shift; break ;;
	*) echo "check-symbols: unknown argument $1" >&2; exit 2 ;;
	esac
done
if (($# == 0)) || [[ ! -f $lib || -z $soname || -z $node ]]; then
	echo "usage: check-symbols.sh --lib F --soname N --node V -- HEADER..." >&2
	exit 2
fi

for h in "$@"; do
	[[ -f $h ]] || { echo "check-symbols: no header $h" >&2; exit 1; }
done
bad=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fm-symbols.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

got=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
if [[ $got != "$soname" ]]; then
	echo "check-symbols: SONAME is '$got', not $soname"
	bad=1
fi

# The headers' text without comments and preprocessor lines (with their
# continuations), then: declared = fm_NAME followed by '(' ; inline = the
# names of static inline definitions.
perl -0777 -ne '
	s{/\*.*?\*/}{ }gs; s{//[^\n]*}{}g;
	s{^[ \t]*#(?:[^\n]*\\\n)*[^\n]*}{}mg;
	print' "$@" >"$tmp/text"
grep -oE '\bfm_[A-Za-z0-9_]+[[:space:]]*\(' "$tmp/text" | tr -d '( \t' | sort -u >"$tmp/named"
perl -0777 -ne 'print "$1\n" while /static\s+inline\b[^;{}()]*?\b(fm_\w+)\s*\(/g' "$tmp/text" |
	sort -u >"$tmp/inline"
comm -23 "$tmp/named" "$tmp/inline" >"$tmp/api"

# exported: every defined dynamic symbol but the version node itself (type A)
nm -D --defined-only "$lib" | awk '$2 != "A" { print $3 }' | sort -u >"$tmp/exported.v"
sed 's/@.*//' "$tmp/exported.v" | sort -u >"$tmp/exported"
grep -v "@@$node\$" "$tmp/exported.v" >"$tmp/unversioned" || true

if [[ -s $tmp/unversioned ]]; then
	echo "check-symbols: exported without the version node $node:"
	sed 's/^/  /' "$tmp/unversioned"
	bad=1
fi
comm -23 "$tmp/exported" "$tmp/api" >"$tmp/extra"
if [[ -s $tmp/extra ]]; then
	echo "check-symbols: exported but not a function of the installed headers:"
	sed 's/^/  /' "$tmp/extra"
	bad=1
fi
comm -13 "$tmp/exported" "$tmp/api" >"$tmp/missing"
if [[ -s $tmp/missing ]]; then
	echo "check-symbols: declared in the installed headers but not exported (add to lib/libflashmeta.map):"
	sed 's/^/  /' "$tmp/missing"
	bad=1
fi
if ((bad)); then
	exit 1
fi
echo "check-symbols: $(wc -l <"$tmp/exported") functions exported, all of them the API ($node, $soname)"
