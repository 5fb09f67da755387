"""A WatchTransitions subscriber as a process of its own, for the slow-consumer test.

    python -m tests.support.watch_subscriber ADDRESS LAST_REVISION DELAY_S STALL_AFTER

It prints "subscribed" once it has its snapshot, then reads transitions, sleeping DELAY_S after
each; after STALL_AFTER transitions (0: never) it stops reading until it gets SIGUSR1. A stream
ended with RESOURCE_EXHAUSTED is resumed from the last revision it got, in its epoch, as a real
subscriber would. Once it has LAST_REVISION it prints one JSON line, {"revisions": [...],
"ended": n, "snapshots": n}, and exits.
"""

import asyncio
import json
import signal
import sys

import grpc
from breaker.v1 import breaker_pb2, breaker_pb2_grpc


async def follow(address: str, last_revision: int, delay_s: float, stall_after: int) -> dict:
    resume = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, resume.set)
    revisions: list[int] = []
    ended = snapshots = 0
    position: tuple[int, str] | None = None  # (revision, epoch) to resume from
    # Without BDP probing the receive window stays at HTTP/2's 64 KiB, so a subscriber that stops
    # reading stops the server's writes soon, as over a slow network.
    async with grpc.aio.insecure_channel(address, options=[("grpc.http2.bdp_probe", 0)]) as channel:
        stub = breaker_pb2_grpc.BreakerServiceStub(channel)
        while not revisions or revisions[-1] < last_revision:
            request = breaker_pb2.WatchTransitionsRequest()
            if position is not None:
                request.from_revision, request.epoch = position
            try:
                async for message in stub.WatchTransitions(request):
                    kind = message.WhichOneof("event")
                    if kind == "snapshot":
                        snapshots += 1
                        position = (message.snapshot.revision, message.snapshot.epoch)
                        if snapshots == 1:
                            print("subscribed", flush=True)
                    elif kind == "transition":
                        revisions.append(message.transition.revision)
                        position = (message.transition.revision, position[1])
                        if revisions[-1] >= last_revision:
                            break
                        if len(revisions) == stall_after:
                            await resume.wait()
                        await asyncio.sleep(delay_s)
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                    raise
                ended += 1
    return {"revisions": revisions, "ended": ended, "snapshots": snapshots}


def main() -> None:
    address, last_revision, delay_s, stall_after = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    print(json.dumps(asyncio.run(follow(address, last_revision, delay_s, stall_after))), flush=True)


if __name__ == "__main__":
    main()
