#!/usr/bin/env bash
# bash-completion-test.sh COMPLETION VOXPRINT: what the completion offers
# after a few command lines, with the built program. _init_completion and
# _filedir (from the bash-completion package) are replaced by minimal ones.
set -u
completion=$1 voxprint=$2
_init_completion() {
  words=("${COMP_WORDS[@]}") cword=$COMP_CWORD
  cur=${words[cword]} prev=${words[cword - 1]:-}
}
_filedir() { COMPREPLY=(FILES); }
source "$completion"
failures=0

# expect "COMMAND LINE" WORD...: the completion of the line's last word
# offers every WORD (and, for "=", exactly them).
expect() {
  local line=$1 exact=0
  shift
  [ "${1:-}" = "=" ] && { exact=1; shift; }
  read -r -a COMP_WORDS <<<"$line"
  [[ $line == *" " ]] && COMP_WORDS+=("")
  COMP_WORDS[0]=$voxprint
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMPREPLY=()
  _voxprint
  local got=" ${COMPREPLY[*]} " word
  for word in "$@"; do
    [[ $got == *" $word "* ]] || { echo "'$line': no $word in:$got"; failures=$((failures + 1)); }
  done
  if [ $exact = 1 ] && [ ${#COMPREPLY[@]} -ne $# ]; then
    echo "'$line': expected exactly $*, got:$got"; failures=$((failures + 1))
  fi
}

expect "voxprint " = embed compare info vad diarize der speakers identify verify eval serve
expect "voxprint diarize --clustering " = ahc spectral
expect "voxprint der --collar-convention " = pyannote md-eval
expect "voxprint em" = embed
expect "voxprint --v" = --version
expect "voxprint embed --mo" = --model
expect "voxprint embed --" --model --window --format --output --jobs --device
expect "voxprint embed --format " = json npy csv
expect "voxprint embed --window s" = sliding
expect "voxprint embed --model " = FILES
expect "voxprint embed -o " = FILES
expect "voxprint embed -j " =
expect "voxprint embed -q " = FILES
expect "voxprint embed --device " auto cpu cuda
expect "voxprint embed --jobs " =
expect "voxprint embed a.wav " = FILES
expect "voxprint serve --" --host --port --workers --api-key --max-upload-mb
expect "voxprint serve --port " =
[ $failures -eq 0 ] && echo "bash completion: all cases ok"
exit $((failures > 0))
