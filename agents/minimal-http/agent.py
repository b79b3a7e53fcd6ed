"""A minimal backup agent speaking graphdrill's control API.

Backups: every node and relationship of the source, read in one transaction,
pickled to a file in the local tier. Restores: the file written into the
recovery database with APOC, in one transaction. Deliberately simple: no
heartbeat, no retries, no failure classes, no incremental backups.
"""
import json
import os
import pickle
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from drill_env import ENV, driver as connect  # noqa: E402

TOKEN = open(ENV["GRAPHDRILL_TOKEN_FILE"]).read().strip()
LOCAL = ENV["GRAPHDRILL_LOCAL_DIR"]
JOBS = {}
LOCK = threading.Lock()  # job dicts are read by one thread while another updates them


def now_ms():
    return int(time.time() * 1000)


def backup(job):
    with connect("NEO4J") as driver, driver.session() as s, s.begin_transaction() as tx:
        nodes = tx.run("MATCH (n) RETURN elementId(n) AS id, labels(n) AS labels, "
                       "properties(n) AS props").data()
        rels = tx.run("MATCH (a)-[r]->(b) RETURN elementId(a) AS a, elementId(b) AS b, "
                      "type(r) AS type, properties(r) AS props").data()
    os.makedirs(LOCAL, exist_ok=True)
    with open(os.path.join(LOCAL, job["backup"] + ".pickle"), "wb") as f:
        pickle.dump({"nodes": nodes, "rels": rels}, f)


def restore(job):
    with open(os.path.join(LOCAL, job["backup"] + ".pickle"), "rb") as f:
        data = pickle.load(f)
    with connect("RECOVERY") as driver, driver.session() as s, s.begin_transaction() as tx:
        ids = dict(tx.run("UNWIND $rows AS row CALL apoc.create.node(row.labels, row.props) "
                          "YIELD node RETURN row.id AS old, elementId(node) AS new",
                          rows=data["nodes"]).values())
        rels = [dict(r, a=ids[r["a"]], b=ids[r["b"]]) for r in data["rels"]]
        tx.run("UNWIND $rows AS row MATCH (a) WHERE elementId(a) = row.a "
               "MATCH (b) WHERE elementId(b) = row.b "
               "CALL apoc.create.relationship(a, row.type, row.props, b) YIELD rel RETURN count(rel)",
               rows=rels).consume()
        tx.commit()


def run(job, work):
    with LOCK:
        job.update(state="running", started_ms=now_ms())
    try:
        work(job)
        end = {"state": "succeeded"}
    except Exception as e:  # a failed job, reported as such
        end = {"state": "failed", "failure": {"class": "internal", "message": str(e)}}
    with LOCK:
        job.update(end, finished_ms=now_ms())


class Handler(BaseHTTPRequestHandler):
    def answer(self, status, body):
        with LOCK:
            data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def authorized(self):
        if self.headers.get("Authorization") == f"Bearer {TOKEN}":
            return True
        self.answer(401, {"error": "unauthorized"})
        return False

    def do_POST(self):
        kinds = {"/v1/backups": ("backup", backup), "/v1/restores": ("restore", restore)}
        if not self.authorized():
            return
        if self.path not in kinds:
            return self.answer(404, {"error": "not found"})
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        kind, work = kinds[self.path]
        created = now_ms()
        job = {"id": str(uuid.uuid4()), "kind": kind, "state": "queued", "tier": request["tier"],
               "created_ms": created, "deadline_ms": created + 120_000, "attempts": 1,
               "backup": request.get("backup") or f"full-{created}"}
        JOBS[job["id"]] = job
        threading.Thread(target=run, args=(job, work), daemon=True).start()
        self.answer(202, job)

    def do_GET(self):
        if not self.authorized():
            return
        job = JOBS.get(self.path.rsplit("/", 1)[-1])
        self.answer(200, job) if job else self.answer(404, {"error": "no such job"})

    def log_message(self, fmt, *args):
        print(fmt % args, flush=True)


ThreadingHTTPServer(("127.0.0.1", int(ENV["GRAPHDRILL_AGENT_PORT"])), Handler).serve_forever()
