"""Server-side actions for tests, through LiveKit's RoomService API (livekit-api).

    room_admin.py remove --url http://127.0.0.1:PORT --api-key K --api-secret S --room R --identity ID

Prints one JSON line with the result; exit code 0 on success, 1 on failure.
"""
import argparse
import asyncio
import json
import sys

from livekit import api


async def remove(args: argparse.Namespace) -> dict:
    lk = api.LiveKitAPI(args.url, args.api_key, args.api_secret)
    try:
        await lk.room.remove_participant(api.RoomParticipantIdentity(room=args.room, identity=args.identity))
        return {"ok": True, "action": "remove", "identity": args.identity}
    finally:
        await lk.aclose()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("action", choices=["remove"])
    p.add_argument("--url", required=True, help="http(s) URL of the server")
    p.add_argument("--api-key", required=True)
    p.add_argument("--api-secret", required=True)
    p.add_argument("--room", required=True)
    p.add_argument("--identity", required=True)
    args = p.parse_args()
    try:
        result = asyncio.run(asyncio.wait_for(remove(args), timeout=10))
    except Exception as e:  # noqa: BLE001 - report any failure as JSON
        print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
