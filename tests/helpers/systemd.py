"""Stand-ins for systemd-run and systemctl (systemd is not PID 1 here): they start the real server as a unit would
and keep what they were asked in a directory of the test's; and the command line a unit test's unit runs."""

from __future__ import annotations

import sys

ARGV = ["/opt/jupyter/bin/jupyter-notebook", "--no-browser", "--ip=0.0.0.0", "--port=8008"]


# Stand-ins: systemd-run starts the command detached with the unit's environment file, directory and user, as systemd
# would (reading $$ as $), and records its PID and User=; systemctl answers `show --property=MainPID|User --value`
# and `stop` for it.
FAKE_SYSTEMD_RUN = f"""#!{sys.executable}
import json, os, re, subprocess, sys
args = sys.argv[1:]
cut = args.index("--")
options, command = args[:cut], [part.replace("$$", "$") for part in args[cut + 1:]]
props = dict(o[len("--property="):].split("=", 1) for o in options if o.startswith("--property="))
unit = next(o.split("=", 1)[1] for o in options if o.startswith("--unit="))
env = {{}}
for line in open(props["EnvironmentFile"]):
    key, value = line.rstrip("\\n").split("=", 1)
    env[key] = re.sub(r"\\\\(.)", r"\\1", value[1:-1])
user = {{"user": int(props["User"]), "group": int(props["Group"])}} if "User" in props else {{}}
proc = subprocess.Popen(command, env=env, cwd=props["WorkingDirectory"], stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, **user)
record = {{"MainPID": proc.pid, "User": props.get("User", "")}}
open(os.path.join(os.environ["FAKE_SYSTEMD_DIR"], unit), "w").write(json.dumps(record))
"""


FAKE_SYSTEMCTL = f"""#!{sys.executable}
import json, os, signal, sys
args = [a for a in sys.argv[1:] if a != "--user"]
unit = args[-1]
record = json.load(open(os.path.join(os.environ["FAKE_SYSTEMD_DIR"], unit)))
if args[0] == "show":
    print(record[args[1].split("=", 1)[1]])
elif args[0] == "stop":
    os.killpg(record["MainPID"], signal.SIGTERM)
"""
