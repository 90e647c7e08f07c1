"""A local stand-in for the Hugging Face Hub's upload API, on 127.0.0.1 only (tests).

It speaks what ``huggingface_hub`` 0.36's ``create_repo`` + ``upload_folder`` use: repo creation,
``preupload`` (regular vs LFS), the LFS batch API with the ``basic`` transfer, the PUT of LFS
objects, and the ndjson ``commit``. Files land under ``root/<owner>/<name>/``; every request's
Authorization header is recorded so a test can check which token arrived.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.hubservers import send_json


class FakeHub:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.repos: dict[str, dict] = {}
        self.auth: list[str] = []
        self.requests: list[str] = []
        self.blobs: dict[str, bytes] = {}
        self.modelscope_create: list[dict] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while True:
                        size = int(self.rfile.readline().strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            return data
                        data += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_POST(self):
                hub.requests.append(f"POST {self.path}")
                hub.auth.append(self.headers.get("Authorization", ""))
                body = self.body()
                base = f"http://127.0.0.1:{self.server.server_address[1]}"
                if self.path == "/api/repos/create":
                    req = json.loads(body)
                    repo = f"{req.get('organization') or 'user'}/{req['name']}"
                    if repo in hub.repos:
                        return send_json(self, 409, {"error": "You already created this model repo", "url": f"{base}/{repo}"})
                    hub.repos[repo] = {"private": req.get("private")}
                    return send_json(self, 200, {"url": f"{base}/{repo}"})
                m = re.match(r"^/api/models/([^/]+/[^/]+)/preupload/([^/?]+)", self.path)
                if m:
                    files = json.loads(body)["files"]
                    modes = [{"path": f["path"], "shouldIgnore": False,
                              "uploadMode": "lfs" if f["path"].endswith((".safetensors", ".bin")) and f["size"] > 0
                              else "regular"} for f in files]
                    return send_json(self, 200, {"files": modes})
                m = re.match(r"^/([^/]+/[^/]+)\.git/info/lfs/objects/batch$", self.path)
                if m:
                    req = json.loads(body)
                    objects = [{"oid": o["oid"], "size": o["size"], "authenticated": True,
                                "actions": {"upload": {"href": f"{base}/lfs-upload/{o['oid']}", "header": {}}}}
                               for o in req["objects"]]
                    return send_json(self, 200, {"transfer": "basic", "objects": objects})
                m = re.match(r"^/api/models/([^/]+/[^/]+)/commit/([^/?]+)", self.path)
                if m:
                    repo = m.group(1)
                    if repo not in hub.repos:
                        return send_json(self, 404, {"error": "Repository not found"})
                    dest = hub.root / repo
                    for line in body.decode().splitlines():
                        if not line.strip():
                            continue
                        item = json.loads(line)
                        value = item["value"]
                        if item["key"] == "file":
                            data = base64.b64decode(value["content"])
                        elif item["key"] == "lfsFile":
                            data = hub.blobs[value["oid"]]
                        else:
                            continue
                        target = dest / value["path"]
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(data)
                    oid = hashlib.sha1(body).hexdigest()
                    return send_json(self, 200, {"commitUrl": f"{base}/{repo}/commit/{oid}", "commitOid": oid})
                if self.path.startswith("/api/v1/"):
                    return self.modelscope_post(body, base)
                return send_json(self, 404, {"error": f"not served by the fake hub: {self.path}"})

            # -- ModelScope (modelscope 1.40 / modelscope_hub): JSON envelopes {Code, Data, Success}
            def ms(self, code: int, data) -> None:
                send_json(self, code, {"Code": code, "Data": data, "Message": "ok" if code == 200 else "error",
                                       "Success": code == 200, "RequestId": "fake"})

            def modelscope_post(self, body: bytes, base: str):
                path = self.path.split("?", 1)[0]
                if path == "/api/v1/models":
                    req = json.loads(body)
                    repo = f"{req.get('Path') or req.get('path')}/{req.get('Name') or req.get('name')}"
                    hub.modelscope_create.append(req)
                    if repo in hub.repos:
                        return self.ms(409, None)
                    hub.repos[repo] = {"private": req.get("Visibility")}
                    return self.ms(200, {"Name": repo})
                m = re.match(r"^/api/v1/repos/models/([^/]+/[^/]+)/info/lfs/objects/batch$", path)
                if m:
                    objects = [{"oid": o["oid"], "size": o["size"],
                                "actions": {"upload": {"href": f"{base}/lfs-upload/{o['oid']}"}}}
                               for o in json.loads(body)["objects"] if o["oid"] not in hub.blobs]
                    return self.ms(200, {"objects": objects})
                m = re.match(r"^/api/v1/repos/models/([^/]+/[^/]+)/commit/([^/]+)$", path)
                if m:
                    repo = m.group(1)
                    if repo not in hub.repos:
                        return self.ms(404, None)
                    for action in json.loads(body)["actions"]:
                        if action.get("type") == "lfs":
                            data = hub.blobs[action["sha256"]]
                        else:
                            data = base64.b64decode(action.get("content") or "")
                        target = hub.root / repo / action["path"]
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(data)
                    return self.ms(200, {"CommitId": hashlib.sha1(body).hexdigest()})
                return self.ms(404, {"error": f"not served by the fake hub: {self.path}"})

            def do_PUT(self):
                hub.requests.append(f"PUT {self.path}")
                hub.auth.append(self.headers.get("Authorization", ""))
                data = self.body()
                oid = self.path.rsplit("/", 1)[-1]
                if hashlib.sha256(data).hexdigest() != oid:
                    return send_json(self, 400, {"error": "sha256 mismatch"})
                hub.blobs[oid] = data
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self):
                hub.requests.append(f"GET {self.path}")
                hub.auth.append(self.headers.get("Authorization", ""))
                return send_json(self, 404, {"error": "not served by the fake hub"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeHub":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
