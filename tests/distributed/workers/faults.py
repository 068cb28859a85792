"""Run under ``mpiexec -n N`` with one fault case as argument; the pytest side checks how
the job ends (exit status, time, what each rank printed).  The failing rank is the last.

raise     the last rank raises while the others wait in all_reduce
exit      the last rank calls sys.exit(3) while the others wait in all_reduce
timeout   the last rank sleeps past the group's 1 s timeout
mismatch  the last rank all-reduces a tensor of another shape (nobody catches it)
"""
import datetime
import sys
import time

import graphc as torch
import graphc.distributed as dist

case = sys.argv[1]
dist.init_process_group("mpi", timeout=datetime.timedelta(seconds=1 if case == "timeout" else 60))
rank, last = dist.get_rank(), dist.get_world_size() - 1
dist.barrier()
if rank == last:
    if case == "raise":
        raise ValueError("boom on purpose")
    if case == "exit":
        sys.exit(3)
    if case == "timeout":
        time.sleep(30)
x = torch.ones(3, 4) if case == "mismatch" and rank == last else torch.ones(3)
dist.all_reduce(x)
print(f"rank {rank} finished", flush=True)
