//! Wire protocols shared by the shim and the supervisor.
