"""Formal checks: bounded proofs, with SymbiYosys, of the core's ISA behaviour and of the
stream and bus handshakes of the engine's and the SoC's blocks (docs/verification.md)."""
