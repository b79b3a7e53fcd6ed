"""Neo4j backup with APOC, as a cron job: `backup`, `restore` or `copy`.

backup:  apoc.export.cypher.schema + apoc.export.graphml.all (useTypes,
         readLabels) into the server's import folder, then upload both files.
restore: download both into the recovery server's import folder, run the
         schema statements, apoc.import.graphml.
copy:    download from one tier, upload to another.
Settings come from graphdrill's GRAPHDRILL_* variables (README).
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from drill_env import ENV, copy, download, driver, upload  # noqa: E402

FILES = ("schema.cypher", "data.graphml")


def backup():
    name = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + ENV["GRAPHDRILL_JOB_ID"]
    started_ms = int(time.time() * 1000)
    with driver("NEO4J") as d, d.session() as s:
        s.run("CALL apoc.export.cypher.schema($file, {format: 'plain'})",
              file=f"{name}-schema.cypher").consume()
        s.run("CALL apoc.export.graphml.all($file, {useTypes: true, readLabels: true})",
              file=f"{name}-data.graphml").consume()
    tier, objects = ENV["GRAPHDRILL_TIER"], []
    for f in FILES:
        path = os.path.join(ENV["GRAPHDRILL_NEO4J_IMPORT_DIR"], f"{name}-{f}")
        key = f"neo4j-backups/{name}/{f}"
        upload(tier, path, key)
        os.remove(path)
        objects.append({"tier": tier, "key": key})
    print(json.dumps({"backup": name, "recovery_point_ms": started_ms, "objects": objects}))


def restore():
    name, tier = ENV["GRAPHDRILL_BACKUP"], ENV["GRAPHDRILL_TIER"]
    folder = ENV["GRAPHDRILL_RECOVERY_IMPORT_DIR"]
    for f in FILES:
        download(tier, f"neo4j-backups/{name}/{f}", os.path.join(folder, f"{name}-{f}"))
    with driver("RECOVERY") as d, d.session() as s:
        schema = open(os.path.join(folder, f"{name}-schema.cypher")).read()
        for statement in schema.split(";"):
            if statement.strip():
                s.run(statement).consume()
        s.run("CALL apoc.import.graphml($file, {useTypes: true, readLabels: true})",
              file=f"{name}-data.graphml").consume()
    for f in FILES:
        os.remove(os.path.join(folder, f"{name}-{f}"))


if sys.argv[1] == "copy":
    copy([f"neo4j-backups/{ENV['GRAPHDRILL_BACKUP']}/{f}" for f in FILES])
else:
    {"backup": backup, "restore": restore}[sys.argv[1]]()
