/* bindgen input: build.h must come first (it sets the feature macros every other header reads). */
#include <freeradius-devel/build.h>
#include <freeradius-devel/radiusd.h>
#include <freeradius-devel/modules.h>
