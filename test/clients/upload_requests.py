"""The platform's documented client shape: Python `requests` asks the upload API for a presigned POST,
then POSTs the returned fields and the file as multipart/form-data. Prints one JSON line:
{"api_status", "upload_status", "upload_id", "key"} (and "api_body" when the API refused)."""
import json
import os
import sys

import requests

api = os.environ["API_URL"]
token = os.environ["API_TOKEN"]
path = sys.argv[1]
body = {"org_id": os.environ["ORG_ID"], "metadata": {"email": "jane@acme.example", "date_of_call": "2024-03-05"}}
if os.environ.get("FILENAME"):
    body["filename"] = os.environ["FILENAME"]
r = requests.post(api + "/asr/async/upload/vela", json=body, headers={"Authorization": "Bearer " + token})
if r.status_code != 200:
    print(json.dumps({"api_status": r.status_code, "api_body": r.json()}))
    sys.exit(0)
grant = r.json()
with open(path, "rb") as f:
    files = [("file", (os.path.basename(path), f, "audio/wav"))]
    up = requests.post(grant["url"], data=grant["fields"], files=files)
print(json.dumps({"api_status": 200, "upload_status": up.status_code, "upload_body": up.text,
                  "upload_id": grant["upload_id"], "key": grant["key"]}))
