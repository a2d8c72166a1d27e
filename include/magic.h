/* Expanded by the C preprocessor in build.rs: the module magic of the installed server. */
#include <freeradius-devel/build.h>
#include <freeradius-devel/radiusd.h>
#include <freeradius-devel/modules.h>
rlm_rust_magic = RLM_MODULE_INIT;
