"""Server-side actions for tests, through LiveKit's RoomService API (livekit-api).

    room_admin.py remove --url http://127.0.0.1:PORT --api-key K --api-secret S --room R --identity ID
    room_admin.py tracks --url http://127.0.0.1:PORT --api-key K --api-secret S --room R --identity ID
        (the server's view of ID's tracks: sid, name, source, mime, width, height)

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


async def tracks(args: argparse.Namespace) -> dict:
    lk = api.LiveKitAPI(args.url, args.api_key, args.api_secret)
    try:
        p = await lk.room.get_participant(api.RoomParticipantIdentity(room=args.room, identity=args.identity))
        return {
            "ok": True,
            "action": "tracks",
            "tracks": [
                {
                    "sid": t.sid,
                    "name": t.name,
                    "source": api.TrackSource.Name(t.source) if hasattr(api, "TrackSource") else int(t.source),
                    "mime": t.mime_type,
                    "width": t.width,
                    "height": t.height,
                }
                for t in p.tracks
            ],
        }
    finally:
        await lk.aclose()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("action", choices=["remove", "tracks"])
    p.add_argument("--url", required=True, help="http(s) URL of the server")
    p.add_argument("--api-key", required=True)
    p.add_argument("--api-secret", required=True)
    p.add_argument("--room", required=True)
    p.add_argument("--identity", required=True)
    args = p.parse_args()
    try:
        action = {"remove": remove, "tracks": tracks}[args.action]
        result = asyncio.run(asyncio.wait_for(action(args), timeout=10))
    except Exception as e:  # noqa: BLE001 - report any failure as JSON
        print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
