"""Plain mpi4py, no graphc: the last rank exits with status 3 while the others block in an
Allreduce.  test_mpi.py runs it to pin down the launcher behaviour graphc.distributed's
fault handling is built for (MPICH's mpiexec leaves this job hanging)."""
import sys

from mpi4py import MPI

import numpy as np

comm = MPI.COMM_WORLD
if comm.Get_rank() == comm.Get_size() - 1:
    sys.exit(3)
comm.Allreduce(MPI.IN_PLACE, np.ones(3))
