#!/usr/bin/env python3
"""ftune's agent on the GPU box. Standard library only (Ubuntu GPU AMIs have python3; nothing is installed).

  fetch  --manifest inputs.json --dest DIR [--parallel N]
      Downloads every {path, url, size, sha256} of the manifest into DIR through presigned (or file://) URLs, in
      parallel, each checked against its sha256 before it is renamed into place; files already there and correct
      are kept. The box needs no AWS credentials.
  upload --manifest outputs.json [--parallel N]
      PUTs every {path, url} (local path, presigned PUT URL).
  watch-spot --marker FILE [--trigger FILE] [--output DIR] [--imds URL] [--interval S] [--heartbeat FILE]
      Polls the instance metadata service (IMDSv2: token first) for a spot interruption notice; when one appears,
      creates the --trigger file (the trainer's "checkpoint now" request) and writes the marker FILE (JSON: action,
      time, noticed_at, and checkpoint_step_at_notice: the newest complete checkpoint-<step> in --output then, so
      the watcher knows which checkpoint is the first one saved after the notice), and keeps polling. With
      --stop-after-checkpoint, once a checkpoint newer than the notice is complete in --output, it records it in
      the marker (stopped_after) and sends SIGTERM to its own process group: the job it runs in, trainer included.
      --imds defaults to $FTUNE_IMDS_URL or http://169.254.169.254 (tests point it at a stand-in).

Exit codes: 0 ok, 1 bad input (manifest), 2 a transfer failed after retries or a file did not match its sha256.
"""
import argparse
import concurrent.futures
import hashlib
import json
import os
import random
import shutil
import signal
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

CHUNK = 4 << 20


def log(msg):
    sys.stderr.write("ftune-agent: %s\n" % msg)
    sys.stderr.flush()


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(CHUNK)
            if not b:
                return h.hexdigest()
            h.update(b)


def retrying(what, fn, attempts=6):
    """Full-jitter exponential backoff on network errors and 5xx/429; other HTTP errors fail at once."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except urllib.error.HTTPError as e:
            if e.code < 500 and e.code != 429 or attempt == attempts:
                raise
            err = e
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as e:
            if attempt == attempts:
                raise
            err = e
        wait = random.uniform(0, min(20.0, 0.5 * 2 ** (attempt - 1)))
        log("%s: %s; retrying in %.1fs" % (what, err, wait))
        time.sleep(wait)


def fetch_one(entry, dest):
    target = os.path.join(dest, entry["path"])
    if os.path.isfile(target) and os.path.getsize(target) == entry["size"] and sha256_of(target) == entry["sha256"]:
        return "kept"
    os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
    part = target + ".ftune-part"

    def download():
        h = hashlib.sha256()
        url = entry["url"]
        if url.startswith("file://"):
            src = urllib.request.url2pathname(urllib.parse.urlparse(url).path)
            with open(src, "rb") as r, open(part, "wb") as w:
                shutil.copyfileobj(r, w, CHUNK)
            return sha256_of(part)
        with urllib.request.urlopen(url, timeout=60) as r, open(part, "wb") as w:
            while True:
                b = r.read(CHUNK)
                if not b:
                    break
                h.update(b)
                w.write(b)
        return h.hexdigest()

    got = retrying(entry["path"], download)
    if got != entry["sha256"]:
        os.remove(part)
        raise ValueError("%s: sha256 %s does not match the manifest's %s" % (entry["path"], got, entry["sha256"]))
    os.replace(part, target)
    return "fetched"


def upload_one(entry):
    def put():
        with open(entry["path"], "rb") as f:
            data = f.read()
        req = urllib.request.Request(entry["url"], data=data, method="PUT", headers={"Content-Length": str(len(data))})
        with urllib.request.urlopen(req, timeout=120) as r:
            r.read()
    retrying(entry["path"], put)
    return "uploaded"


def load_manifest(path, keys):
    try:
        with open(path) as f:
            entries = json.load(f)
        if not isinstance(entries, list) or not all(isinstance(e, dict) and all(k in e for k in keys) for e in entries):
            raise ValueError("expected a list of objects with %s" % ", ".join(keys))
        return entries
    except (OSError, ValueError) as e:
        log("%s: %s" % (path, e))
        sys.exit(1)


def run_all(entries, fn, parallel):
    failed = 0
    counts = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=parallel) as pool:
        futures = {pool.submit(fn, e): e for e in entries}
        for fut in concurrent.futures.as_completed(futures):
            try:
                what = fut.result()
                counts[what] = counts.get(what, 0) + 1
            except Exception as e:  # report every file, then fail once
                failed += 1
                log("FAILED %s: %s" % (futures[fut].get("path"), e))
    log(", ".join(["%s %d" % kv for kv in sorted(counts.items())] + (["failed %d" % failed] if failed else [])))
    return 2 if failed else 0


def imds_request(base, path, token=None, method="GET"):
    headers = {"X-aws-ec2-metadata-token-ttl-seconds": "21600"} if method == "PUT" else {"X-aws-ec2-metadata-token": token}
    req = urllib.request.Request(base.rstrip("/") + path, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=2) as r:
        return r.read().decode()


def write_json(path, body):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(body, f)
    os.replace(tmp, path)


def newest_checkpoint_step(out):
    """The step of the newest complete (trainer_state.json written) checkpoint-<step> folder in out, or 0."""
    best = 0
    try:
        names = os.listdir(out)
    except OSError:
        return 0
    for name in names:
        if name.startswith("checkpoint-") and name[11:].isdigit() and os.path.isfile(os.path.join(out, name, "trainer_state.json")):
            best = max(best, int(name[11:]))
    return best


def watch_spot(args):
    base = args.imds or os.environ.get("FTUNE_IMDS_URL") or "http://169.254.169.254"
    token, token_at = None, 0.0
    notice_body = None
    unreachable_logged = False
    while True:
        if notice_body is not None and args.stop_after_checkpoint and args.output:
            # Once a checkpoint newer than the notice is complete, whatever the trainer computes is lost with
            # the box: stop the job's whole process group (this agent included) right here, no round trip.
            step = newest_checkpoint_step(args.output)
            if step > notice_body.get("checkpoint_step_at_notice", 0):
                notice_body["stopped_after"] = "checkpoint-%d" % step
                write_json(args.marker, notice_body)
                log("checkpoint-%d saved after the notice: stopping the trainer" % step)
                os.killpg(os.getpgrp(), signal.SIGTERM)
                return
        try:
            if token is None or time.time() - token_at > 3600:
                token, token_at = imds_request(base, "/latest/api/token", method="PUT"), time.time()
            notice = imds_request(base, "/latest/meta-data/spot/instance-action", token)
            if not os.path.exists(args.marker):
                body = json.loads(notice)
                body["noticed_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                if args.output:
                    body["checkpoint_step_at_notice"] = newest_checkpoint_step(args.output)
                if args.trigger:
                    # Before the marker: the trainer starts its checkpoint while the watcher hears of the notice.
                    open(args.trigger, "a").close()
                write_json(args.marker, body)
                notice_body = body
                log("spot interruption notice: %s at %s" % (body.get("action"), body.get("time")))
        except urllib.error.HTTPError as e:
            if e.code == 401:
                token = None  # expired token: get a new one
            elif e.code != 404:  # 404: no notice, the normal case
                log("IMDS answered %d" % e.code)
        except (urllib.error.URLError, OSError, ValueError) as e:
            if not unreachable_logged:  # once: a line per poll would flood the job log
                log("IMDS not reachable (%s); still polling" % e)
                unreachable_logged = True
        if args.heartbeat:
            with open(args.heartbeat, "w") as f:
                f.write(str(int(time.time())))
        time.sleep(args.interval)


def main(argv):
    p = argparse.ArgumentParser(prog="ftune_agent.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch")
    f.add_argument("--manifest", required=True)
    f.add_argument("--dest", required=True)
    f.add_argument("--parallel", type=int, default=8)
    u = sub.add_parser("upload")
    u.add_argument("--manifest", required=True)
    u.add_argument("--parallel", type=int, default=4)
    w = sub.add_parser("watch-spot")
    w.add_argument("--marker", required=True)
    w.add_argument("--trigger")
    w.add_argument("--output")
    w.add_argument("--stop-after-checkpoint", action="store_true")
    w.add_argument("--imds")
    w.add_argument("--interval", type=float, default=5.0)
    w.add_argument("--heartbeat")
    args = p.parse_args(argv)
    if args.cmd == "fetch":
        entries = load_manifest(args.manifest, ("path", "url", "size", "sha256"))
        return run_all(entries, lambda e: fetch_one(e, args.dest), args.parallel)
    if args.cmd == "upload":
        return run_all(load_manifest(args.manifest, ("path", "url")), upload_one, args.parallel)
    watch_spot(args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
