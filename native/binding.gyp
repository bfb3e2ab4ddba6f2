{
  "targets": [{
    "target_name": "paciofs_sys",
    "sources": ["sys.c"],
    "cflags": ["-O2", "-Wall", "-Wextra"]
  }]
}
