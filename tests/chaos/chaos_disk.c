#include "chaos.h"
int chaos_disk_suite(void)
{
	return 0;
}
