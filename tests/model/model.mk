# tests/model/model.mk - protocol model check with spin, included by the
# top Makefile.  See tests/model/README.md.
#
#   make model-check        the models, the variants that must hold and
#                           the broken ones that spin must reject (about
#                           40 s of CPU; make -j runs them in parallel)
#   make model-check-deep   larger bounds and the count-less ABA variant
#                           (minutes)
#
# Each run is name:model:expect:defines (defines comma-separated); the
# verifier, its output and any trail land in build/model/<name>/.

MODEL_OUT := build/model
model_comma := ,

MODEL_RUNS := \
	spsc:spsc:pass:-DCAP=1,-DNMSG=3 \
	spsc-cap2:spsc:pass:-DCAP=2,-DNMSG=3 \
	spsc-live:spsc:live:-DCAP=1,-DNMSG=3 \
	spsc-no-w2:spsc:pass:-DNO_W2 \
	spsc-broken-p2-data:spsc:fail:-DNO_P2_DATA \
	spsc-broken-p2-space:spsc:fail:-DNO_P2_SPACE \
	spsc-broken-term-late:spsc:fail:-DTERM_LATE \
	spsc-broken-relaxed-hdr:spsc:fail:-DRELAXED_HDR \
	spsc-broken-relaxed-load:spsc:fail:-DRELAXED_LOAD \
	mpsc-cap1:mpsc:pass:-DCAP=1,-DNPROD=2,-DNEACH=1,-DSTALLS=0 \
	mpsc-cap2:mpsc:pass:-DCAP=2,-DNPROD=2,-DNEACH=1,-DSTALLS=0 \
	mpsc-stall-close:mpsc:pass:-DCAP=1,-DNPROD=1,-DNEACH=2,-DSTALLS=1,-DCLOSE \
	mpsc-live:mpsc:live:-DCAP=1,-DNPROD=1,-DNEACH=2,-DSTALLS=1,-DCLOSE \
	mpsc-no-w2:mpsc:pass:-DCAP=2,-DSTALLS=0,-DNO_W2 \
	mpsc-broken-p2-data:mpsc:fail:-DCAP=2,-DSTALLS=0,-DNO_P2_DATA \
	mpsc-broken-p2-space:mpsc:fail:-DCAP=1,-DSTALLS=0,-DNO_P2_SPACE \
	mpsc-more:mpsc:pass:-DCAP=2,-DNPROD=1,-DNEACH=2,-DSTALLS=1,-DCLOSE,-DMORE \
	mpsc-broken-no-stamp0:mpsc:fail:-DCAP=1,-DNPROD=2,-DNEACH=1,-DSTALLS=0,-DNO_STAMP0 \
	mpsc-broken-carve-store:mpsc:fail:-DCAP=2,-DNPROD=1,-DNEACH=2,-DSTALLS=1,-DCLOSE,-DMORE,-DCARVE_STORE \
	doorbell:doorbell:pass:-DNMSG=3 \
	doorbell-live:doorbell:live:-DNMSG=3 \
	doorbell-no-w2:doorbell:pass:-DNO_W2 \
	doorbell-broken-p2:doorbell:fail:-DNO_P2 \
	doorbell-broken-drain-late:doorbell:fail:-DDRAIN_LATE

MODEL_DEEP_RUNS := \
	spsc-4msg:spsc:pass:-DCAP=2,-DNMSG=4 \
	spsc-sb3:spsc:pass:-DSB=3,-DNMSG=4 \
	spsc-spurious:spsc:pass:-DSPURIOUS=1 \
	mpsc-live2:mpsc:live:-DCAP=2,-DNPROD=2,-DNEACH=1,-DSTALLS=0 \
	mpsc-stall2:mpsc:passbit:-DCAP=2,-DNPROD=2,-DNEACH=1,-DSTALLS=1 \
	mpsc-close2:mpsc:passbit:-DCAP=1,-DNPROD=2,-DNEACH=1,-DSTALLS=0,-DCLOSE \
	mpsc-broken-no-count:mpsc:failbit:-DCAP=2,-DNEACH=2,-DSTALLS=0,-DNO_COUNT \
	mpsc-more2:mpsc:passbit:-DCAP=2,-DNPROD=2,-DNEACH=2,-DSTALLS=1,-DMORE

model_name = $(word 1,$(subst :, ,$(1)))
model_args = $(subst $(model_comma), ,$(subst :, ,$(1)))

define MODEL_RULE
.PHONY: model-run-$(call model_name,$(1))
model-run-$(call model_name,$(1)):
	@sh tests/model/check.sh $(MODEL_OUT) $(call model_args,$(1))
endef
$(foreach r,$(MODEL_RUNS) $(MODEL_DEEP_RUNS),$(eval $(call MODEL_RULE,$(r))))

.PHONY: model-check model-check-deep
model-check: $(foreach r,$(MODEL_RUNS),model-run-$(call model_name,$(r)))
	@echo "model-check: all $(words $(MODEL_RUNS)) runs as expected"

model-check-deep: $(foreach r,$(MODEL_DEEP_RUNS),model-run-$(call model_name,$(r)))
	@echo "model-check-deep: all $(words $(MODEL_DEEP_RUNS)) runs as expected"

TEST_EXTRA += model-check
