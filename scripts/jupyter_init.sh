#!/usr/bin/env bash
# jupyter_init.sh TOKEN [START_URL] [COMPLETE_URL] [OPTIONS...]
#
# Drop-in replacement for the old jupyter_init.sh: same name, same arguments, same callbacks. It runs jupyter-init,
# which brings up the Jupyter server and reports to START_URL and COMPLETE_URL. Further arguments are passed on as
# options of `jupyter-init run` (e.g. --port auto); `jupyter-init run --help` lists them.
#
# The token leaves the command line here: it reaches jupyter-init (and then Jupyter) through JUPYTER_TOKEN, so
# neither process shows it in ps.
set -u

# Its real directory: installed on PATH as a link (examples/cloud-init/user-data-dropin.yaml), it still finds the
# jupyter-init it was installed with.
self=$(readlink -f "${BASH_SOURCE[0]}")
here=${self%/*}
if [ -n "${PROVISIONER:-}" ]; then
    command=("$PROVISIONER")                  # an explicit choice, e.g. /opt/jupyter-init/bin/jupyter-init
elif [ -x "$here/jupyter-init" ]; then
    command=("$here/jupyter-init")            # installed together, in the same bin directory
elif command -v jupyter-init >/dev/null 2>&1; then
    command=(jupyter-init)
elif python3 -c 'import provisioner' >/dev/null 2>&1; then
    command=(python3 -m provisioner)
else
    echo "jupyter_init.sh: jupyter-init is not installed (pip install 'jupyter-init==VERSION', or set PROVISIONER)" >&2
    exit 127
fi

# The old script took any first word as the token; asking for help is the one it cannot have meant as one.
if [ "${1-}" = "--help" ] || [ "${1-}" = "-h" ]; then
    echo "usage: ${0##*/} TOKEN [START_URL] [COMPLETE_URL] [OPTIONS...]  (OPTIONS: those of \`jupyter-init run --help\`)"
    exit 0
fi

# An absent token is an empty one: the provisioner reports status=failed&reason=no_token, as the old script did.
export JUPYTER_TOKEN="${1-}"
exec "${command[@]}" run --start-url "${2-}" --complete-url "${3-}" "${@:4}"
