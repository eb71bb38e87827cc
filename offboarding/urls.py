"""Self-service URLs of the lifecycle (namespace `offboarding`)."""

from django.urls import path

from offboarding import views

app_name = "offboarding"

urlpatterns = [
    path("tasks/", views.my_tasks, name="my_tasks"),
    path("tasks/<int:pk>/done/", views.task_done, name="task_done"),
    path("returns/", views.my_returns, name="my_returns"),
    path("returns/<int:pk>/ship/", views.return_ship, name="return_ship"),
    path("returns/link/<str:token>/", views.return_link, name="return_link"),
    path("returns/link/<str:token>/<int:pk>/ship/", views.return_link_ship, name="return_link_ship"),
    path("team/", views.team, name="team"),
    path("team/<int:pk>/", views.team_member, name="team_member"),
    path("team/<int:pk>/request/<str:kind>/", views.change_request, name="change_request"),
]
