#!/bin/sh
# The image's roles, as in the Procfile; anything else runs as given (`aimodel --version`, a shell).
set -eu
case "${1:-web}" in
    web) [ "$#" -gt 0 ] && shift; exec aimodel serve --no-worker "$@" ;;
    worker) shift; exec aimodel worker "$@" ;;
    *) exec "$@" ;;
esac
