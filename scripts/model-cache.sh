# Sourced by the scripts that fetch a model into the cache (smollm2.sh,
# embedding-model.sh, e5-model.sh). Not run.
#
# model_cache MODEL LOCK: when MODEL (a file) is there, prints its path and
# ends the script; else holds the cache's lock LOCK (another run fetching
# the same model waits, then finds it) and makes $work, a scratch folder
# removed when the script ends.
model_cache() {
    local model="$1" lock="$2" cache_root
    cache_root="${HEARTH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hearth}"
    if [[ -s "$model" ]]; then
        echo "$model"
        exit 0
    fi
    mkdir -p "$cache_root"
    exec 9>"$cache_root/$lock.lock"
    flock 9
    if [[ -s "$model" ]]; then
        echo "$model"
        exit 0
    fi
    work="$(mktemp -d)"
    # shellcheck disable=SC2064 # the folder is known now
    trap "rm -rf '$work'" EXIT
}
