#!/bin/bash
# The approach the provisioner replaces, as its README describes it, for comparison only:
# module load, port check with ss, start in the background, a fixed 3 s wait, a process check, curl callbacks.
TOKEN=$1
START_URL=$2
COMPLETE_URL=$3
PORT=${PORT:-8008}

[ -z "$TOKEN" ] && { [ -n "$START_URL" ] && curl -s -X POST -d "status=failed&reason=no_token" "$START_URL"; exit 1; }
[ -n "$START_URL" ] && curl -s -X POST -d "status=init_started" "$START_URL" >/dev/null

module load JupyterNotebook
command -v jupyter-notebook >/dev/null || { echo "jupyter-notebook not found in PATH" >&2; exit 1; }

if ss -ltn "( sport = :$PORT )" | grep -q ":$PORT"; then
    [ -n "$COMPLETE_URL" ] && curl -s -X POST -d "status=failed&reason=port_in_use" "$COMPLETE_URL"
    exit 1
fi

mkdir -p "$HOME/.jupyter"
root=""; [ "$(id -u)" = 0 ] && root="--allow-root"
JUPYTER_TOKEN="$TOKEN" nohup jupyter-notebook --no-browser --ip=0.0.0.0 --port="$PORT" $root \
    > "$HOME/.jupyter/jupyter.log" 2>&1 &
PID=$!
sleep 3
if ! kill -0 "$PID" 2>/dev/null; then
    [ -n "$COMPLETE_URL" ] && curl -s -X POST -d "status=failed&reason=failed_to_start" "$COMPLETE_URL"
    exit 1
fi
IP=$(ip -4 addr show scope global | awk '/inet /{sub("/.*","",$2); print $2; exit}')
cat > "$HOME/.jupyter/jupyter_info.txt" <<INFO
VM IP: $IP
Port: $PORT
Token: $TOKEN
URL: http://$IP:$PORT/?token=$TOKEN
PID: $PID
INFO
[ -n "$COMPLETE_URL" ] && curl -s -X POST -d "status=init_completed&token=$TOKEN" "$COMPLETE_URL" >/dev/null
exit 0
