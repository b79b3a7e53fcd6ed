"""What the example agents share: connections and storage from graphdrill's
GRAPHDRILL_* variables (README, "Drilling your own backup tool"). A real
deployment would read its own configuration; this is that configuration."""
import json
import os
import shutil

import boto3
from botocore.config import Config
from neo4j import GraphDatabase

ENV = os.environ


def driver(prefix):
    """`NEO4J` (the source) or `RECOVERY`."""
    password = open(ENV[f"GRAPHDRILL_{prefix}_PASSWORD_FILE"]).read().strip()
    return GraphDatabase.driver(ENV[f"GRAPHDRILL_{prefix}_URI"],
                                auth=(ENV[f"GRAPHDRILL_{prefix}_USER"], password))


def bucket(tier):
    p = f"GRAPHDRILL_S3_{tier.upper()}"
    creds = json.load(open(ENV[p + "_CREDENTIALS_FILE"]))
    client = boto3.client("s3", endpoint_url=ENV[p + "_ENDPOINT"], region_name=ENV[p + "_REGION"],
                          aws_access_key_id=creds["access_key"],
                          aws_secret_access_key=creds["secret_key"],
                          config=Config(s3={"addressing_style": "path"}))
    return client, ENV[p + "_BUCKET"]


def upload(tier, path, key):
    """`local` is a folder; `primary` and `archive` are S3 buckets."""
    if tier == "local":
        dest = os.path.join(ENV["GRAPHDRILL_LOCAL_DIR"], key)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(path, dest)
    else:
        client, name = bucket(tier)
        client.upload_file(path, name, key)


def download(tier, key, path):
    if tier == "local":
        shutil.copyfile(os.path.join(ENV["GRAPHDRILL_LOCAL_DIR"], key), path)
    else:
        client, name = bucket(tier)
        client.download_file(name, key, path)


def copy(keys):
    """The `copy` job: each key from GRAPHDRILL_FROM to GRAPHDRILL_TO."""
    for key in keys:
        tmp = os.path.join(ENV["GRAPHDRILL_WORK_DIR"], "copy-" + os.path.basename(key))
        download(ENV["GRAPHDRILL_FROM"], key, tmp)
        upload(ENV["GRAPHDRILL_TO"], tmp, key)
        os.remove(tmp)
