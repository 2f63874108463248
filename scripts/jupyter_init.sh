#!/usr/bin/env bash
# jupyter_init.sh TOKEN [START_URL] [COMPLETE_URL] [OPTIONS...]
#
# Drop-in replacement for the old jupyter_init.sh: same name, same arguments, same callbacks. It runs the
# provisioner, which brings up the Jupyter server and reports to START_URL and COMPLETE_URL. Further arguments are
# passed on as provisioner options (e.g. --port auto). `provisioner run --help` lists them.
#
# The token leaves the command line here: it reaches the provisioner (and then Jupyter) through JUPYTER_TOKEN, so
# neither process shows it in ps.
set -u

# Its real directory: installed on PATH as a link (examples/cloud-init/user-data-dropin.yaml), it still finds the
# provisioner it was installed with.
self=$(readlink -f "${BASH_SOURCE[0]}")
here=${self%/*}
if [ -n "${PROVISIONER:-}" ]; then
    provisioner=("$PROVISIONER")              # an explicit choice, e.g. /opt/provisioner/bin/provisioner
elif [ -x "$here/provisioner" ]; then
    provisioner=("$here/provisioner")         # installed together, in the same bin directory
elif command -v provisioner >/dev/null 2>&1; then
    provisioner=(provisioner)
elif python3 -c 'import provisioner' >/dev/null 2>&1; then
    provisioner=(python3 -m provisioner)
else
    echo "jupyter_init.sh: the provisioner is not installed (pip install 'jupyter-init==VERSION', or set PROVISIONER)" >&2
    exit 127
fi

# An absent token is an empty one: the provisioner reports status=failed&reason=no_token, as the old script did.
export JUPYTER_TOKEN="${1-}"
exec "${provisioner[@]}" run --start-url "${2-}" --complete-url "${3-}" "${@:4}"
