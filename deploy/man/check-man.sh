#!/usr/bin/env bash
# check-man.sh -- the man pages say what the programs do.
#
#   check-man.sh --man DIR --bin DIR [--no-help-exit PROG]... PROG=PAGE... [-- PAGE...]
#
# For each PROG=PAGE (PAGE a file in --man, e.g. flashmeta.1; PROG in --bin):
#   1. the page renders without a warning: groff -man -ww (and its .TH names
#      PROG and the section of the file's suffix);
#   2. every long option `PROG --help` prints appears in the page, and every
#      option the page's OPTIONS section defines (the tag line after a .TP)
#      appears in --help;
#   3. the page has an EXIT STATUS section with 0 and 2 in it, --help tells
#      the exit status too (unless --no-help-exit PROG: a program whose
#      --help this project cannot change today), `--help` exits 0 and an
#      unknown option exits 2, as the pages say;
# then every program in --bin that is not a test has a page, and each PAGE
# after `--` (pages of no program, e.g. flashmeta.7) renders clean.
# Ends with one line "N passed, N failed" (the programs checked).
set -uo pipefail

man=
bin=
declare -A no_help_exit=()
pairs=()
pages=()
while (($#)); do
	case $1 in
	--man) man=$2; shift 2 ;;
	--bin) bin=$2; shift 2 ;;
	--no-help-exit) no_help_exit[$2]=1; shift 2 ;;
	--) shift; pages=("$@"); break ;;
	*=*) pairs+=("$1"); shift ;;
	*) echo "check-man.sh: unexpected '$1'" >&2; exit 2 ;;
	esac
done
[[ -d $man && -d $bin && ${#pairs[@]} -gt 0 ]] ||
	{ echo "usage: check-man.sh --man DIR --bin DIR PROG=PAGE... [-- PAGE...]" >&2; exit 2; }
command -v groff >/dev/null || { echo "check-man.sh: groff not found (deploy/install-deps.sh)" >&2; exit 2; }

export LC_ALL=C.UTF-8 MANWIDTH=80
passed=0
failed=0
bad() {
	echo "FAIL $cur: $*"
	ok=0
}

# warnings of groff's man macros and of troff itself, all of them
render() {
	local out
	out=$(groff -man -Tutf8 -ww -z "$1" 2>&1)
	[[ -z $out ]] || bad "groff -man -ww: $out"
}

# the page as text to search: \- is -, font escapes gone
page_text() {
	sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' -e 's/\\(dq/"/g' "$1"
}

# long options in text on stdin, one a line, sorted
long_opts() {
	grep -oE -- '(^|[^A-Za-z0-9_-])--[a-z][a-z0-9-]*' | sed -E 's/^[^-]*//' | sort -u
}

# the tag lines of .TP items in the section named $2 of page $1
tags_of() {
	page_text "$1" | awk -v sec="$2" '
		/^\.SH / { s = $0; sub(/^\.SH +"?/, "", s); sub(/"$/, "", s); in_sec = (s == sec); next }
		in_sec && /^\.TP/ { tag = 1; next }
		in_sec && tag { print; tag = 0 }'
}

for pair in "${pairs[@]}"; do
	prog=${pair%%=*}
	page=$man/${pair#*=}
	cur=$prog
	ok=1
	if [[ ! -f $page ]]; then
		bad "no page $page"
	elif [[ ! -x $bin/$prog ]]; then
		bad "no program $bin/$prog"
	else
		render "$page"
		sect=${page##*.}
		th=$(grep -m1 '^\.TH ' "$page" | sed 's/\\-/-/g')
		want_th=".TH ${prog^^} $sect "
		[[ $th == "$want_th"* ]] || bad ".TH is '$th', wanted '$want_th...'"

		help=$(timeout 10 "$bin/$prog" --help 2>&1)
		rc=$?
		((rc == 0)) || bad "--help exited $rc"
		text=$(page_text "$page")
		while read -r o; do
			[[ -z $o ]] && continue
			grep -qE -- "${o}([^a-z0-9-]|$)" <<<"$text" ||
				bad "--help has $o, the page does not"
		done < <(long_opts <<<"$help")
		help_opts=$(long_opts <<<"$help")
		while read -r o; do
			[[ -z $o ]] && continue
			grep -qxF -- "$o" <<<"$help_opts" ||
				bad "the page's OPTIONS define $o, --help does not have it"
		done < <(tags_of "$page" OPTIONS | long_opts)

		exits=$(tags_of "$page" "EXIT STATUS" | sed -E 's/^\.B +//')
		[[ -n $exits ]] || bad "no EXIT STATUS section (with .TP items)"
		for code in 0 2; do
			grep -qx "$code" <<<"$exits" || bad "EXIT STATUS does not list $code"
		done
		if [[ -z ${no_help_exit[$prog]:-} ]]; then
			grep -qi 'exit status' <<<"$help" || bad "--help does not tell the exit status"
		fi
		timeout 10 "$bin/$prog" --no-such-option-xyz >/dev/null 2>&1
		rc=$?
		((rc == 2)) || bad "an unknown option exited $rc, the page says 2"
	fi
	if ((ok)); then
		echo "ok   $prog ($page)"
		((passed++))
	else
		((failed++))
	fi
done

# every program that is not a test has a page (a new tool needs one)
cur="bin/"
ok=1
for f in "$bin"/*; do
	[[ -x $f && -f $f ]] || continue
	name=${f##*/}
	case $name in
	test_* | it_* | fuzz_* | pmem_hold | fm-pit | fm-json-check) continue ;; # tests and their helpers
	esac
	found=0
	for pair in "${pairs[@]}"; do
		[[ ${pair%%=*} == "$name" ]] && found=1
	done
	((found)) || bad "$name has no man page (deploy/man/, and list it in its CMakeLists.txt)"
done
for p in "${pages[@]}"; do
	cur=$p
	[[ -f $man/$p ]] || { bad "no page $man/$p"; continue; }
	render "$man/$p"
done
if ((ok)); then
	((passed++))
else
	((failed++))
fi

echo "$passed passed, $failed failed"
((failed == 0))
