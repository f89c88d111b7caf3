/*
 * A guest that calls a function it never defined, the way C code does when the
 * definition is missing and it is linked with --allow-undefined: wasm-ld turns the
 * symbol into an import from the module "env". wasmsrv must refuse it at load and
 * say that "env" is not something the host provides (it is not a plugin to grant).
 * Rebuild: bash sdk/c/build.sh.
 */
#include "../../../sdk/c/wasmsrv.h"

__attribute__((import_module("env"), import_name("lookup_user"))) extern int lookup_user(int id);

static int handle(wasmsrv_request *req, wasmsrv_response *resp) {
    (void)req;
    return wasmsrv_resp_end(resp, "user\n", lookup_user(1) ? 5 : 0);
}

WASMSRV_HANDLER(handle)
