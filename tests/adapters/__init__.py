"""Tests of the adapters and of the fakes that stand in for them."""
