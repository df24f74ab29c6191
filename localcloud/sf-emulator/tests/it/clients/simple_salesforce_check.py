"""Parses the emulator's answers with simple-salesforce and prints what it read, as JSON.

Run by clients.rs with SF_HOST (host:port of the emulator) and SF_SESSION (an access token)
in the environment. simple-salesforce always speaks https; a transport adapter sends its
requests to the emulator's plain-http loopback port instead.
"""

import json
import os

import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce


class LoopbackHttp(HTTPAdapter):
    def send(self, request, **kwargs):
        request.url = "http://" + request.url[len("https://"):]
        return super().send(request, **kwargs)


session = requests.Session()
session.mount("https://", LoopbackHttp())
sf = Salesforce(
    instance=os.environ["SF_HOST"],
    session_id=os.environ["SF_SESSION"],
    session=session,
    version="62.0",
)

nested = sf.query(
    "SELECT Name, (SELECT LastName FROM Contacts ORDER BY LastName) FROM Account ORDER BY Name"
)
grouped = sf.query_all(
    "SELECT AccountId, COUNT(Id) n, MAX(LastName) FROM Contact GROUP BY AccountId"
)
plain = sf.query_all("SELECT Id, Account.Name FROM Contact")
account = sf.Account.describe()
everything = sf.describe()
limits = sf.limits()

print(
    json.dumps(
        {
            "nested": [
                {
                    "name": record["Name"],
                    "children": [
                        child["LastName"]
                        for child in (record["Contacts"] or {"records": []})["records"]
                    ],
                    "child_total": (record["Contacts"] or {}).get("totalSize"),
                }
                for record in nested["records"]
            ],
            "grouped": [
                {
                    "type": record["attributes"]["type"],
                    "n": record["n"],
                    "max": record["expr0"],
                }
                for record in grouped["records"]
            ],
            "plain_total": plain["totalSize"],
            "plain_rows": len(plain["records"]),
            "describe_name": account["name"],
            "describe_fields": len(account["fields"]),
            "describe_record_types": len(account["recordTypeInfos"]),
            "global_sobjects": len(everything["sobjects"]),
            "daily_api_max": limits["DailyApiRequests"]["Max"],
        }
    )
)
