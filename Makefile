# SPDX-License-Identifier: MIT
# holdfast build. Layers: lib/ (libhf, sans-I/O WebSocket core) -> net/
# (event loop, sockets) -> client/ (libhfclient, the WebSocket client) ->
# sdk/ (libhfsdk, the real-time protocol SDK) -> server/ (holdfast serve)
# and tools/ (bench, connect, probe, sub, pub).
#
#   make            release build: build/holdfast
#   make SAN=1      ASan+UBSan build: build/asan/holdfast
#   make run        install deps if missing, build, serve on 127.0.0.1:8000
#   make test       the whole suite (release and sanitizer builds)
#   make fuzz       libFuzzer targets (clang), short runs over the corpus

CC ?= cc
PKGS := jansson libssl libcrypto hiredis libcares zlib libcurl

ifeq ($(SAN),1)
  B := build/asan
  OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
         -fno-sanitize-recover=undefined
  LDSAN := -fsanitize=address,undefined
else
  B := build
  OPT := -O2 -g
  LDSAN :=
endif

# make METRICS=off: metrics counting compiled out, in build/nometrics (a
# benchmark baseline: scripts/bench-containment.sh)
ifeq ($(METRICS),off)
  B := $(B)/nometrics
  CPPFLAGS += -DHF_METRICS_OFF
endif

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wpointer-arith -Wformat=2 -Wno-unused-parameter -Werror
CPPFLAGS += -Iinclude -Iserver -D_GNU_SOURCE
CFLAGS += -std=gnu11 $(OPT) $(WARN) -pthread \
          $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -pthread -lm
LDFLAGS += $(LDSAN)

LIB_SRC := $(wildcard lib/*.c)
NET_SRC := $(wildcard net/*.c)
CLIENT_SRC := $(wildcard client/*.c)
SDK_SRC := $(wildcard sdk/*.c)
EXAMPLE_SRC := $(wildcard examples/*.c)
SRV_SRC := $(wildcard server/*.c server/*/*.c) $(wildcard tools/*.c)
UNIT_SRC := $(wildcard tests/unit/test_*.c)

LIB_OBJ := $(LIB_SRC:%.c=$(B)/obj/%.o)
NET_OBJ := $(NET_SRC:%.c=$(B)/obj/%.o)
CLIENT_OBJ := $(CLIENT_SRC:%.c=$(B)/obj/%.o)
SDK_OBJ := $(SDK_SRC:%.c=$(B)/obj/%.o)
EXAMPLE_BIN := $(EXAMPLE_SRC:examples/%.c=$(B)/examples/%)
SRV_OBJ := $(SRV_SRC:%.c=$(B)/obj/%.o)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)

.PHONY: all run test deps fuzz fuzz-build clean bench drills
all: $(B)/holdfast $(UNIT_BIN) $(EXAMPLE_BIN) $(B)/tests/sdk_driver $(B)/tests/sdk_memory

$(B)/libhf.a: $(LIB_OBJ)
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

$(B)/libhfnet.a: $(NET_OBJ)
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

$(B)/libhfclient.a: $(CLIENT_OBJ)
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

$(B)/libhfsdk.a: $(SDK_OBJ)
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

HF_LIBS := $(B)/libhfsdk.a $(B)/libhfclient.a $(B)/libhfnet.a $(B)/libhf.a

$(B)/holdfast: $(SRV_OBJ) $(HF_LIBS)
	$(CC) $(LDFLAGS) -o $@ $(SRV_OBJ) $(HF_LIBS) $(LDLIBS)

$(B)/tests/%: tests/unit/%.c $(SRV_OBJ) $(HF_LIBS) tests/harness/test.h
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Itests/harness $(CFLAGS) $(LDFLAGS) -o $@ $< \
	  $(filter-out $(B)/obj/server/main.o,$(SRV_OBJ)) \
	  $(HF_LIBS) $(LDLIBS)

# example programs (docs/client.md): only the public headers and libraries
$(B)/examples/%: examples/%.c $(HF_LIBS)
	@mkdir -p $(@D)
	$(CC) -Iinclude $(CFLAGS) $(LDFLAGS) -o $@ $< $(HF_LIBS) $(LDLIBS)

# the C side of the SDK comparison (tests/integration/test_sdk.py)
# and the memory per SDK connection (docs/sdk.md)
$(B)/tests/sdk_%: tests/sdk/%.c $(HF_LIBS)
	@mkdir -p $(@D)
	$(CC) -Iinclude $(CFLAGS) $(LDFLAGS) -o $@ $< $(HF_LIBS) $(LDLIBS)

$(B)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

-include $(wildcard $(B)/obj/*/*.d $(B)/obj/*/*/*.d)

# the dashboard page is embedded with .incbin (not seen by -MMD)
$(B)/obj/server/admin/assets.o: server/admin/dashboard.html

deps:
	@scripts/deps.sh

run: deps
	@$(MAKE) --no-print-directory $(B)/holdfast
	exec ./$(B)/holdfast serve --listen 127.0.0.1:8000

test: deps
	@tests/run.sh

fuzz-build:
	@scripts/fuzz.sh build

fuzz: fuzz-build
	@scripts/fuzz.sh run

bench: $(B)/holdfast
	@scripts/bench.sh

# the failure drills (docs/failure-drills.md); DRILLS=long for all of them
drills: $(B)/holdfast
	@scripts/drills.sh

clean:
	rm -rf build
