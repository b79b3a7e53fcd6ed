"""Neo4j backup with neo4j-admin, as a cron job: `backup`, `restore` or `copy`.

backup:  stop the source server, dump database `neo4j`, start it again,
         upload the dump. Writes during the downtime fail.
restore: download the dump, stop the recovery server, load it over its
         database, start it.
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from drill_env import ENV, copy, download, upload  # noqa: E402


def service(command, *args):
    """`graphdrill env …` for this environment, as `systemctl` would be."""
    subprocess.run([ENV["GRAPHDRILL_BIN"], "env", command, "--dir", ENV["GRAPHDRILL_ENV_DIR"], *args],
                   check=True, stdout=sys.stderr)


def key(name):
    return f"neo4j-dumps/{name}.dump"


def backup():
    name = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + ENV["GRAPHDRILL_JOB_ID"]
    folder = os.path.join(ENV["GRAPHDRILL_WORK_DIR"], "dumps", name)
    os.makedirs(folder)
    service("stop", "neo4j")
    # Nothing is written from here on: every acknowledged write is in the dump.
    stopped_ms = int(time.time() * 1000)
    try:
        service("neo4j-admin", "neo4j", "--", "database", "dump", "neo4j", f"--to-path={folder}")
    finally:
        service("start", "neo4j")
    path = os.path.join(folder, "neo4j.dump")
    tier = ENV["GRAPHDRILL_TIER"]
    upload(tier, path, key(name))
    os.remove(path)
    print(json.dumps({"backup": name, "recovery_point_ms": stopped_ms,
                      "objects": [{"tier": tier, "key": key(name)}]}))


def restore():
    name = ENV["GRAPHDRILL_BACKUP"]
    folder = os.path.join(ENV["GRAPHDRILL_WORK_DIR"], "loads", name)
    os.makedirs(folder, exist_ok=True)
    download(ENV["GRAPHDRILL_TIER"], key(name), os.path.join(folder, "neo4j.dump"))
    service("stop", "neo4j-recovery")
    try:
        service("neo4j-admin", "neo4j-recovery", "--", "database", "load", "neo4j",
                f"--from-path={folder}", "--overwrite-destination=true")
    finally:
        service("start", "neo4j-recovery")


if sys.argv[1] == "copy":
    copy([key(ENV["GRAPHDRILL_BACKUP"])])
else:
    {"backup": backup, "restore": restore}[sys.argv[1]]()
