"""Shared pytest harness for libeq1: brokers, PKI, TCP proxy and C program helpers."""
